"""Validation of widget values before a graph runs, so ``/prompt`` rejects a bad graph with one clean error on the
input at fault.

ComfyUI validates a V1-style dropdown (an input whose type is the list of options) itself: a bad value gets the
stock ``value_not_in_list`` error on that input. It does not validate V3 ``COMBO`` inputs, so the pack declares its
dropdowns with :class:`Choice` (a V3 combo that presents itself in the V1 list form). ComfyUI attaches a
``validate_inputs`` failure to every argument of that function, so each node's ``validate_inputs`` takes only the
one input it checks; the checks here never raise on a value of the wrong type.
"""

from __future__ import annotations

from .comfyui import io


class Choice(io.Combo.Input):
    """A dropdown that ComfyUI validates itself (stock ``value_not_in_list`` error on this input alone)."""

    def get_io_type(self):
        return list(self.options)
