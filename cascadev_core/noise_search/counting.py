"""The ``on_eval`` hook handed to the sampler: cancellation, counting and progress around each evaluation.

Two counts are kept. A *model call* is one call of the model on a batch of candidates (one ``on_eval()``).
An *evaluation* is one model evaluation of one candidate, the unit of the issue's costs (m·k + s, s, m·s per
chunk): a call on a batch of B candidates is B evaluations. Wall time follows model calls, cost follows
evaluations; batching is what separates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..progress import Progress


class EvalCounter:
    """Counts model calls and per-candidate evaluations, and drives a :class:`Progress`.

    Wrap each sampler call in :meth:`run` and hand the counter itself to the sampler as ``on_eval``.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.evaluations = 0
        self.model_calls = 0
        self._batch = 0
        self._pending = 0

    def __call__(self) -> None:
        """Called by the sampler right before each model evaluation of the whole batch."""
        self._flush()  # the previous evaluation is finished: report it before asking whether to stop
        self.progress.check()
        self._pending = self._batch
        self.model_calls += 1
        self.evaluations += self._batch

    @contextmanager
    def run(self, batch: int) -> Iterator[EvalCounter]:
        """Context of one sampler call on ``batch`` candidates; on exit the last evaluation is counted done.

        Raises RuntimeError if the sampler never called ``on_eval``: its evaluations could be neither counted
        nor interrupted.
        """
        self._batch = batch
        calls_before = self.model_calls
        yield self
        self._flush()
        if self.model_calls == calls_before:
            raise RuntimeError(
                "sample() returned without calling on_eval(): it must call on_eval() before every model "
                "evaluation so that evaluations are counted and should_stop is honoured"
            )

    def _flush(self) -> None:
        if self._pending:
            self.progress.advance(self._pending)
            self._pending = 0
