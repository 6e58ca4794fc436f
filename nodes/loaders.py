"""Loader nodes: the CascadeV DiT, the effnet encoder, and the attention-layout settings node."""

from __future__ import annotations

import json

from comfy_api.latest import io

from ..cascadev_core.attention_layouts import LAYOUT_PRESETS, describe_layout, resolve_layout
from ..cascadev_core.checkpoint import load_dit
from ..cascadev_core.effnet import load_effnet_encoder
from .models import CascadeVEffnet, CascadeVModel, check_model_file, model_files, model_path, patch, resolve_dtype
from .types import CascadeVEffnetType, CascadeVLayoutType, CascadeVModelType
from .validation import check_combos

LAYOUT_CHOICES = list(LAYOUT_PRESETS)
DTYPE_CHOICES = ["auto", "fp32", "bf16", "fp16"]


class CascadeVModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVModelLoader",
            display_name="Load CascadeV Model",
            category="CascadeV/loaders",
            description="Loads the CascadeV LDM-VAE DiT (e.g. s1024.effn-f32.pth) from models/cascadev.",
            inputs=[
                io.Combo.Input(
                    "dit_name",
                    options=model_files(),
                    tooltip="DiT weights in models/cascadev: the released s1024.effn-f32.pth or its .safetensors.",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=DTYPE_CHOICES,
                    default="auto",
                    tooltip="auto = the official recipe (fp16 weights, fp32 attention) on GPUs with fast fp16, "
                    "fp32 elsewhere.",
                ),
                io.Combo.Input(
                    "attention_layout",
                    options=LAYOUT_CHOICES,
                    default="official",
                    tooltip="Grid-attention layout per block: official = the released schedule; full = full 3D "
                    "attention everywhere (slow); paper / walt = the papers' alternatives (walt's 5-frame windows "
                    "need a refine window divisible by 5). Ignored when a custom_layout is connected.",
                ),
                CascadeVLayoutType.Input(
                    "custom_layout", optional=True, tooltip="A layout from the 'CascadeV Attention Layout' node."
                ),
            ],
            outputs=[CascadeVModelType.Output(display_name="cascadev_model")],
        )

    @classmethod
    def validate_inputs(cls, dit_name, weight_dtype, attention_layout) -> bool | str:
        combos = check_combos(cls, weight_dtype=weight_dtype, attention_layout=attention_layout)
        return check_model_file(dit_name, "dit_name: CascadeV DiT") if combos is True else combos

    @classmethod
    def execute(cls, dit_name, weight_dtype, attention_layout, custom_layout=None) -> io.NodeOutput:
        import comfy.model_management as mm

        path = model_path(dit_name, "CascadeV DiT")
        layout = custom_layout if custom_layout is not None else attention_layout
        model, config = load_dit(path, layout=layout)
        dtype = resolve_dtype(weight_dtype, mm.get_torch_device())
        return io.NodeOutput(CascadeVModel(patcher=patch(model, dtype), config=config))


class CascadeVEffnetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVEffnetLoader",
            display_name="Load CascadeV Effnet Encoder",
            category="CascadeV/loaders",
            description="Loads the EfficientNetV2-S semantic encoder (Stable Cascade's effnet_encoder.safetensors) "
            "that turns frames into the 16-channel 1/32 conditioning latents.",
            inputs=[
                io.Combo.Input(
                    "effnet_name",
                    options=model_files(),
                    tooltip="Effnet encoder weights in models/cascadev (effnet_encoder.safetensors).",
                ),
                io.Combo.Input("weight_dtype", options=DTYPE_CHOICES, default="auto", tooltip="Compute dtype."),
            ],
            outputs=[CascadeVEffnetType.Output(display_name="effnet")],
        )

    @classmethod
    def validate_inputs(cls, effnet_name, weight_dtype) -> bool | str:
        combos = check_combos(cls, weight_dtype=weight_dtype)
        return check_model_file(effnet_name, "effnet_name: effnet encoder") if combos is True else combos

    @classmethod
    def execute(cls, effnet_name, weight_dtype) -> io.NodeOutput:
        import comfy.model_management as mm

        encoder = load_effnet_encoder(model_path(effnet_name, "Effnet encoder"))
        dtype = resolve_dtype(weight_dtype, mm.get_torch_device())
        return io.NodeOutput(CascadeVEffnet(patcher=patch(encoder, dtype)))


class CascadeVAttentionLayout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVAttentionLayout",
            display_name="CascadeV Attention Layout",
            category="CascadeV/settings",
            description="A custom grid-attention schedule, cycled over the DiT blocks. Each entry: null (full 3D "
            "attention), [t_chunks, s_windows] (the official grid: t_chunks temporal chunks x s_windows^2 spatial "
            'windows) or {"window": [t, h, w]} (window size in tokens, W.A.L.T. style).',
            inputs=[
                io.String.Input(
                    "schedule",
                    default="[[1, 4], [4, 1], null]",
                    multiline=True,
                    tooltip="JSON list of per-block entries, or a preset name (official, full, paper, walt).",
                ),
            ],
            outputs=[CascadeVLayoutType.Output(display_name="layout")],
        )

    @classmethod
    def validate_inputs(cls, schedule) -> bool | str:
        try:
            parse_schedule(schedule)
        except ValueError as err:
            return f"schedule: {err}"
        return True

    @classmethod
    def execute(cls, schedule) -> io.NodeOutput:
        layout = parse_schedule(schedule)
        text = "\n".join(describe_layout(layout, len(layout) if isinstance(layout, list) else 1))
        return io.NodeOutput(layout, ui={"text": [text]})


def parse_schedule(schedule: str):
    """A preset name or a JSON list of per-block entries; raises ValueError with what was expected."""
    text = schedule.strip()
    if not text.startswith("["):
        resolve_layout(text, 1)  # a preset name ("official", "paper:4", ...): raises naming what is accepted
        return text
    try:
        layout = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a preset name ({', '.join(LAYOUT_PRESETS)}) or a JSON list; {err}") from None
    if not isinstance(layout, list) or not layout:
        raise ValueError("expected a non-empty JSON list of per-block entries")
    resolve_layout(layout, len(layout))
    return layout


NODES = [CascadeVModelLoader, CascadeVEffnetLoader, CascadeVAttentionLayout]
