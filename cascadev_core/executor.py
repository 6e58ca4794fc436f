"""Where model calls run: the job executor the refine and the noise search hand their calls to.

A routine turns its work into *calls* (argument tuples, built lazily, in order) and asks an executor for the
results, in the same order::

    for out in executor.map(fn, calls, progress):  # out = fn(*args) for each args in calls
        blend(out)

:class:`LocalExecutor` (the default everywhere) is today's behaviour: it polls ``progress.check()``, calls
``fn(*args)`` in this process and advances ``progress`` by one, call after call. A remote executor
(:class:`~cascadev_core.ray_executor.RayExecutor`) runs the calls on workers that each hold their own copy of the
model, rebuilt from a picklable *spec* (:class:`ModelSpec` for the DiT, :class:`SamplerSpec` for a noise-search
sampler) instead of ``fn``; the caller keeps its state and blends the results in call order, so the output does not
depend on how many workers there are.

Nothing here imports Ray; ``ray_executor`` does, lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from .attention_layouts import LayoutSpec
from .checkpoint import load_dit
from .config import DiTConfig
from .progress import Progress


class Executor(Protocol):
    """Runs calls and yields their results in call order (see the module docstring)."""

    def map(self, fn: Callable, calls: Iterable[tuple], progress: Progress | None = None) -> Iterator[Any]:
        """``fn(*args)`` for each ``args`` of ``calls``, in order; ``progress.check()`` before each call is started
        (raises :class:`~cascadev_core.progress.Interrupted`), ``progress.advance()`` as each result is yielded."""
        ...


class LocalExecutor:
    """Calls ``fn`` in this process, one call after another: the pack's behaviour without workers."""

    def map(self, fn: Callable, calls: Iterable[tuple], progress: Progress | None = None) -> Iterator[Any]:
        for args in calls:
            if progress is not None:
                progress.check()
            out = fn(*args)
            if progress is not None:
                progress.advance()
            yield out


LOCAL = LocalExecutor()


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a loaded DiT in another process: the checkpoint FILE and the options of
    :func:`~cascadev_core.checkpoint.load_dit` (weights load once per worker, never travel with a call).

    Args:
        path: the checkpoint file; it must exist at this path on every machine that runs a worker.
        dtype: parameter dtype (None keeps the file's).
        layout: attention layout (``"config"`` keeps the file's).
        attention_dtype: dtype of q/k/v in attention (float32 = the official recipe).
        config: an explicit :class:`DiTConfig` (None infers it from the file).
        precision: a mode of :mod:`cascadev_core.precision` instead of ``dtype`` / ``attention_dtype``, resolved
            for each worker's own device.
    """

    path: str
    dtype: torch.dtype | None = None
    layout: LayoutSpec | str = "config"
    attention_dtype: torch.dtype | None = torch.float32
    config: DiTConfig | None = None
    precision: str | None = None

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The DiT on ``device``, called as ``dit(x [N, Cin, S, S], t [N], frames_per_video) -> [N, Cout, S, S]``."""
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"ModelSpec.path: {self.path} is not a file on this machine (every worker needs it)"
            )
        dtypes = (
            {"precision": self.precision}
            if self.precision
            else {"dtype": self.dtype, "attention_dtype": self.attention_dtype}
        )
        model, _ = load_dit(self.path, config=self.config, layout=self.layout, device=device, **dtypes)
        return model


class CountedSample:
    """A noise-search ``sample`` callable run without the driver's hook: ``(noise, guide, num_steps, seeds) ->
    (x, calls)`` where ``calls`` is how many times the sampler called ``on_eval`` (its model calls), replayed on
    the driver; ``seeds`` (one per noise slice) reach the sampler as a keyword when given."""

    def __init__(self, sample: Callable) -> None:
        self.sample = sample

    def __call__(
        self, noise: torch.Tensor, guide: torch.Tensor, num_steps: int, seeds: list[int] | None = None
    ) -> tuple[torch.Tensor, int]:
        calls = 0

        def on_eval() -> None:
            nonlocal calls
            calls += 1

        extra = {} if seeds is None else {"seeds": seeds}
        return self.sample(noise, guide, num_steps, on_eval, **extra), calls


@dataclass(frozen=True)
class SamplerSpec:
    """How to rebuild a noise-search ``sample`` callable in a worker: ``factory()`` returns it (a picklable
    top-level function, class or :func:`functools.partial`; the factory travels to each worker once).

    ``build(device)`` returns a :class:`CountedSample`; tensors reach it on the worker's device.
    """

    factory: Callable[[], Callable]

    def build(self, device: torch.device | str = "cpu") -> CountedSample:
        return CountedSample(self.factory())


def sample_batches(
    executor: Executor,
    sample: Callable,
    noises: Iterable[torch.Tensor],
    sizes: Iterable[int],
    guide: torch.Tensor,
    num_steps: int,
    counter,
    seeds: list[list[int]] | None = None,
) -> Iterator[torch.Tensor]:
    """Noise-search candidate batches through ``executor``: all batches are handed over at once (a remote executor
    runs them on different workers), results come back in order.

    Args:
        executor: where the batches run; a remote one samples with its :class:`SamplerSpec`'s rebuilt sampler.
        sample: the local ``sample(noise, guide, num_steps, on_eval)``.
        noises: ``[B_i, *noise_shape]`` per batch (CPU); sizes: the batches (their lengths ``B_i`` are used).
        guide: ``[1, C, H, W]``; num_steps: the schedule length.
        counter: the chunk sampler's ``EvalCounter``: its ``should_stop`` is polled before each batch is started,
            and each batch's model calls are replayed on it when its result arrives (progress, counts, interrupt).
        seeds: each batch's candidate seeds, handed to ``sample`` as ``seeds=`` (None: not handed over).

    Yields:
        each batch's sampler output ``[B_i, ...]`` (ValueError naming ``sample`` when it is not one per noise).
    """
    check = Progress(0, None, counter.progress.should_stop)  # only polls: the replay below reports progress
    sizes = [len(b) if isinstance(b, (list, tuple)) else int(b) for b in sizes]
    seed_lists = seeds if seeds is not None else [None] * len(sizes)
    calls = ((noise, guide, num_steps, s) for noise, s in zip(noises, seed_lists))
    for size, (x, evals) in zip(sizes, executor.map(CountedSample(sample), calls, check)):
        with counter.run(size):
            for _ in range(evals):
                counter()
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] != size:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"sample must return one result per noise, batch {size}, got {got}")
        yield x
