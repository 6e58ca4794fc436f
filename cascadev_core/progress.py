"""Progress reporting and cooperative cancellation shared by every long-running core routine.

The core never imports a UI. Callers (ComfyUI nodes, the CLI, tests) pass two plain callables:

* ``on_step(done, total)`` is called after each unit of work (one model evaluation, one decoded slice, ...);
* ``should_stop()`` is polled before each unit; when it returns True the routine raises :class:`Interrupted`
  and returns nothing, so no half-finished result escapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

StepCallback = Callable[[int, int], None]
StopHook = Callable[[], bool]


class Interrupted(RuntimeError):
    """Raised when ``should_stop()`` returned True; the interrupted routine produced no output."""


@dataclass
class Progress:
    """Counts units of work against a known total and forwards them to the caller's hooks.

    Args:
        total: number of units the routine will perform (e.g. model evaluations).
        on_step: called as ``on_step(done, total)`` after every unit; may be None.
        should_stop: polled by :meth:`check`; returning True raises :class:`Interrupted`.
    """

    total: int
    on_step: StepCallback | None = None
    should_stop: StopHook | None = None
    done: int = 0

    def check(self) -> None:
        """Raise :class:`Interrupted` if the caller asked to stop. Call before each unit of work."""
        if self.should_stop is not None and self.should_stop():
            raise Interrupted(f"interrupted after {self.done} of {self.total} steps")

    def advance(self, n: int = 1) -> None:
        """Record ``n`` finished units and report them."""
        self.done += n
        if self.on_step is not None:
            self.on_step(self.done, self.total)
