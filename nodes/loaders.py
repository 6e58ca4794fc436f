"""Loader nodes: the CascadeV DiT, the effnet encoder, and the attention-layout settings node."""

from __future__ import annotations

import json

from ..cascadev_core.attention_layouts import LAYOUT_PRESETS, describe_layout, resolve_layout
from ..cascadev_core.checkpoint import load_dit
from ..cascadev_core.effnet import load_effnet_encoder
from ..cascadev_core.executor import ModelSpec
from ..cascadev_core.precision import PRECISION_MODES
from . import models, native
from .comfyui import internal, io, missing
from .models import (
    DTYPES,
    CascadeVEffnet,
    CascadeVModel,
    check_model_file,
    loading,
    model_files,
    model_path,
    patch,
    resolve_dtype,
)
from .types import CascadeVEffnetType, CascadeVLayoutType, CascadeVModelType
from .validation import Choice

LAYOUT_CHOICES = list(LAYOUT_PRESETS)
DTYPE_CHOICES = ["auto", "fp32", "bf16", "fp16"]
#: the DiT loader's weight_dtype: the precision modes of cascadev_core.precision, then plain dtypes (kept for
#: workflows saved before the modes existed)
PRECISION_CHOICES = [*PRECISION_MODES, "bf16", "fp16"]
MAX_SCHEDULE_CHARS = 10_000


class CascadeVModelLoader(io.ComfyNode):
    REQUIRES = models.REQUIRES + ("comfy.model_management.should_use_fp16",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVModelLoader",
            display_name="Load CascadeV Model",
            category="CascadeV/loaders",
            description="Loads the CascadeV LDM-VAE DiT (e.g. s1024.effn-f32.pth) from models/cascadev.",
            inputs=[
                Choice(
                    "dit_name",
                    options=model_files(),
                    tooltip="DiT weights in models/cascadev: the released s1024.effn-f32.pth or its .safetensors.",
                ),
                Choice(
                    "weight_dtype",
                    options=PRECISION_CHOICES,
                    default="auto",
                    tooltip="Precision mode: official = the released recipe (fp16 weights, fp32 attention on GPUs; fp32 "
                    "on CPUs); fast = bf16 matmuls and attention with an fp32 token stream (within 1% of fp32 on a "
                    "whole refine, 0.4x the official time per call on a bf16 CPU); fp32; auto = fast where measured "
                    "safe, else official. bf16 / fp16 = the whole model in that dtype (older workflows).",
                ),
                Choice(
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
    def validate_inputs(cls, dit_name) -> bool | str:
        return check_model_file(dit_name)

    @classmethod
    def execute(cls, dit_name, weight_dtype, attention_layout, custom_layout=None) -> io.NodeOutput:
        layout = custom_layout if custom_layout is not None else attention_layout
        path = model_path(dit_name, "dit_name")
        if weight_dtype in PRECISION_MODES:
            spec = ModelSpec(path, dtype=None, layout=layout, precision=weight_dtype)
        else:
            spec = ModelSpec(path, dtype=DTYPES[weight_dtype], layout=layout)
        # loaded on the CPU with the dtypes of the device ComfyUI will run it on
        device = internal("comfy.model_management.get_torch_device")()
        dtypes = {"precision": spec.precision, "precision_device": device} if spec.precision else {"dtype": spec.dtype}
        with loading(path, "dit_name", dit_name):
            dit, config = load_dit(path, layout=layout, **dtypes)
        dit.eval().requires_grad_(False)
        # one owner: the DiT inside ComfyUI's MODEL wrapper (for the native path) when this ComfyUI has it
        owned = dit if missing(native.REQUIRES) else native.native_model(dit)
        return io.NodeOutput(CascadeVModel(patcher=patch(owned), config=config, dit_module=dit, spec=spec))


class CascadeVEffnetLoader(io.ComfyNode):
    REQUIRES = models.REQUIRES + ("comfy.model_management.should_use_fp16",)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVEffnetLoader",
            display_name="Load CascadeV Effnet Encoder",
            category="CascadeV/loaders",
            description="Loads the EfficientNetV2-S semantic encoder (Stable Cascade's effnet_encoder.safetensors) "
            "that turns frames into the 16-channel 1/32 conditioning latents.",
            inputs=[
                Choice(
                    "effnet_name",
                    options=model_files(),
                    tooltip="Effnet encoder weights in models/cascadev (effnet_encoder.safetensors).",
                ),
                Choice("weight_dtype", options=DTYPE_CHOICES, default="auto", tooltip="Compute dtype."),
            ],
            outputs=[CascadeVEffnetType.Output(display_name="effnet")],
        )

    @classmethod
    def validate_inputs(cls, effnet_name) -> bool | str:
        return check_model_file(effnet_name)

    @classmethod
    def execute(cls, effnet_name, weight_dtype) -> io.NodeOutput:
        dtype = resolve_dtype(weight_dtype, internal("comfy.model_management.get_torch_device")())
        path = model_path(effnet_name, "effnet_name")
        with loading(path, "effnet_name", effnet_name):
            encoder = load_effnet_encoder(path, dtype=dtype)
        return io.NodeOutput(CascadeVEffnet(patcher=patch(encoder)))


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


def parse_schedule(schedule) -> object:
    """A preset name or a JSON list of per-block entries; raises ValueError saying what was expected (never
    another exception, whatever the text: deep nesting, huge numbers, wrong types)."""
    if not isinstance(schedule, str):
        raise ValueError(f"expected a preset name or a JSON list as text, got {type(schedule).__name__}")
    text = schedule.strip()
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ValueError(f"expected at most {MAX_SCHEDULE_CHARS} characters, got {len(text)}")
    try:
        if not text.startswith("["):
            resolve_layout(text, 1)  # a preset name ("official", "paper:4", ...): raises naming what is accepted
            return text
        layout = json.loads(text)
        if not isinstance(layout, list) or not layout:
            raise ValueError("expected a non-empty JSON list of per-block entries")
        resolve_layout(layout, len(layout))
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a preset name ({', '.join(LAYOUT_PRESETS)}) or a JSON list; {err}") from None
    except (TypeError, OverflowError, RecursionError) as err:
        raise ValueError(f'expected entries like null, [1, 4] or {{"window": [5, 8, 8]}}; {err}') from None
    return layout


NODES = [CascadeVModelLoader, CascadeVEffnetLoader, CascadeVAttentionLayout]
