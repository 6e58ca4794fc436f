"""Validation of widget values before a graph runs (``/prompt`` rejects bad graphs with the input's name).

ComfyUI 0.3.75 does not check V3 combo values against their options, so nodes call :func:`check_combos` from
their ``validate_inputs``.
"""

from comfy_api.latest import io


def check_combos(node: type[io.ComfyNode], **values) -> bool | str:
    """True if every given combo value is one of its options, else a message naming the input and the options."""
    options = {i.id: i.options for i in node.define_schema().inputs if isinstance(i, io.Combo.Input)}
    for name, value in values.items():
        if name in options and value not in options[name]:
            return f"{name}: '{value}' is not one of {', '.join(map(str, options[name]))}"
    return True
