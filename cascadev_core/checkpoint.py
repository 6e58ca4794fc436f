"""Loading CascadeV DiT checkpoints: the released ``.pth`` and converted ``.safetensors`` files.

The released ``s1024.effn-f32.pth`` is ``{"state_dict": <float16 state dict>}``. Like the official
``diffusion/utils/checkpoint.py`` the loader unwraps ``state_dict`` and drops ``pos_embed`` keys; unlike it the
load is strict and any mismatch raises :class:`CheckpointMismatchError`. The model is built on the meta device
and the loaded tensors are assigned to it (``assign=True``), so the weights exist once in memory (for ``.pth``
files they stay memory-mapped until cast or moved).

Alignment: a memory-mapped safetensors tensor starts at the file's data offset, which depends on the header
length (e.g. ``data_ptr() % 64 == 24``), and CPU matmul kernels take different code paths (different rounding)
for unaligned operands, so the same weights gave different outputs from files whose metadata differ. After
loading, every CPU tensor of the model that is not :data:`ALIGNMENT`-byte aligned is copied into a fresh
(aligned) allocation (:func:`align_tensors_`): outputs depend on the weights only, for any file.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .attention_layouts import LayoutSpec, group_counts, resolve_layout
from .config import DiTConfig
from .dit import CascadeDiT
from .precision import Precision, apply_precision

# keys the official loader deletes from checkpoint["state_dict"] before loading
POS_EMBED_KEYS = ("pos_embed", "base_model.pos_embed", "model.pos_embed")
METADATA_CONFIG_KEY = "cascadev_config"
ALIGNMENT = 64  # bytes: torch's CPU allocator alignment, a cache line and an AVX-512 vector
_FIRST = 5  # keys listed per category in mismatch errors


class CheckpointMismatchError(ValueError):
    """The file's tensors do not match the model: lists missing, unexpected and wrong-shape keys."""

    def __init__(
        self,
        path: str,
        missing: list[str],
        unexpected: list[str],
        wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        model_desc: str = "",
    ) -> None:
        self.path, self.missing, self.unexpected, self.wrong_shape = path, missing, unexpected, wrong_shape
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {format_key_list(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {format_key_list(unexpected)}")
        if wrong_shape:
            shown = [f"{k} (file {list(f)}, model {list(m)})" for k, f, m in wrong_shape]
            parts.append(f"{len(wrong_shape)} wrong-shape key(s): {format_key_list(shown)}")
        target = f" {model_desc}" if model_desc else " the model"
        super().__init__(f"checkpoint {path} does not match{target}: " + "; ".join(parts))


def format_key_list(items: list[str]) -> str:
    text = ", ".join(items[:_FIRST])
    return text + (f", ... ({len(items) - _FIRST} more)" if len(items) > _FIRST else "")


# ------------------------------------------------------------------------------------------ reading
class NotPlainCheckpoint(ValueError):
    """A torch file that holds Python objects besides tensors: it is refused, never unpickled."""


def _torch_load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            # legacy (non-zip) serialisation cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise NotPlainCheckpoint(
            f"{path.name} is not a plain tensor checkpoint: besides tensors it holds Python objects, which could run "
            "code when loaded, so it is refused. If it comes from a source you trust, re-save its tensors as "
            ".safetensors (safetensors.torch.save_file) and load that file instead."
        ) from None


def load_state_dict_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a DiT state dict from ``.safetensors`` or a torch file (``.pth`` / ``.pt`` / ``.ckpt`` / ``.bin``).

    Torch files are loaded with ``weights_only=True`` (memory-mapped when possible); a ``state_dict`` wrapper
    is removed and the ``pos_embed`` keys the official loader deletes are dropped. Dtypes are kept.

    Args:
        path: checkpoint file.

    Returns:
        ``(state_dict, metadata)``; metadata is the safetensors header metadata (empty for torch files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(path))
    else:
        obj = _torch_load(path)
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
        state = dict(obj)
    for key in POS_EMBED_KEYS:
        state.pop(key, None)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"checkpoint {path} has non-tensor entries (not a plain state dict): {format_key_list(bad)}")
    return state, metadata


# ------------------------------------------------------------------------------------------ config
def read_config(path: str | Path) -> DiTConfig:
    """The :class:`DiTConfig` of a checkpoint file without reading its weights: a safetensors header (shapes and
    metadata), or a memory-mapped torch file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        state, metadata = load_state_dict_file(path)
        return infer_config(state, metadata)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        keys = handle.keys()
        shapes = {k: torch.empty(handle.get_slice(k).get_shape(), device="meta") for k in keys}
    for key in POS_EMBED_KEYS:
        shapes.pop(key, None)
    return infer_config(shapes, metadata)


def infer_config(
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    num_heads: int | None = None,
    **overrides: Any,
) -> DiTConfig:
    """Infer a :class:`DiTConfig` from tensor shapes (and safetensors metadata if it holds a config).

    Shapes give hidden size, depth, patch size, in/out channels and mlp ratio. The head count is not a shape
    property: taken from ``num_heads``, else the metadata, else 16 for hidden 1152 (the released model);
    otherwise ValueError. Non-weight fields (layout, lats_per_vid, pe_interpolation, input_size, ...) come from
    the metadata or the released defaults.

    Args:
        state_dict: the DiT tensors (official key names).
        metadata: safetensors metadata (``cascadev_config`` = :meth:`DiTConfig.to_json`), optional.
        num_heads: head count, if known.
        **overrides: DiTConfig fields to force.

    Returns:
        the config (the strict load still checks every shape).
    """
    base: dict[str, Any] = {}
    if metadata and METADATA_CONFIG_KEY in metadata:
        base = DiTConfig.from_dict(json.loads(metadata[METADATA_CONFIG_KEY])).to_dict()
    need = ("x_embedder.proj.weight", "final_layer.linear.weight", "blocks.0.mlp.fc1.weight")
    absent = [k for k in need if k not in state_dict]
    if absent:
        raise ValueError(f"not a CascadeDiT state dict: no {', '.join(absent)}")
    hidden, in_ch, patch, _ = state_dict["x_embedder.proj.weight"].shape
    out_features = state_dict["final_layer.linear.weight"].shape[0]
    if out_features % (patch * patch):
        raise ValueError(f"final_layer.linear has {out_features} outputs, not a multiple of patch^2={patch**2}")
    indices = {int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))}
    depth = max(indices) + 1
    if indices != set(range(depth)):
        raise ValueError(f"state dict blocks are not numbered 0..{depth - 1}: missing {set(range(depth)) - indices}")
    fields: dict[str, Any] = {
        "hidden_size": int(hidden),
        "in_channels": int(in_ch),
        "patch_size": int(patch),
        "depth": depth,
        "out_channels": out_features // (patch * patch),
        "mlp_ratio": state_dict["blocks.0.mlp.fc1.weight"].shape[0] / hidden,
    }
    if num_heads is not None:
        fields["num_heads"] = num_heads
    elif "num_heads" in base and base.get("hidden_size") == hidden:
        fields["num_heads"] = base["num_heads"]
    elif hidden == 1152:
        fields["num_heads"] = 16
    else:
        raise ValueError(
            f"cannot infer num_heads for hidden_size={hidden} from tensor shapes; pass num_heads= or use a "
            "converted .safetensors whose metadata holds the config"
        )
    if fields["mlp_ratio"] == int(fields["mlp_ratio"]):
        fields["mlp_ratio"] = float(int(fields["mlp_ratio"]))
    base.update(fields)
    base.update(overrides)
    return DiTConfig.from_dict(base)


def check_config_fits_layout(config: DiTConfig, source: str) -> None:
    """Raise ValueError naming ``source`` when the attention layout cannot split the config's own window and tile
    (``lats_per_vid`` frames of ``input_size / patch_size`` tokens square): odd sizes in a file's metadata fail
    here, at load, pointing at the file, instead of at the first model call."""
    side = config.input_size // config.patch_size
    for i, entry in enumerate(resolve_layout(config.attn_layout, config.depth)):
        try:
            group_counts(entry, config.lats_per_vid, side, side, i)
        except ValueError as err:
            raise ValueError(
                f"{source}: its config (lats_per_vid={config.lats_per_vid}, input_size={config.input_size}, "
                f"patch_size={config.patch_size}, from the file's metadata or the released defaults) does not fit "
                f"the attention layout: {err}. Re-convert it with python -m cascadev_core.convert_checkpoint and "
                "the right --lats-per-vid / --input-size, or pick another layout."
            ) from None


# ------------------------------------------------------------------------------------------ loading
def is_aligned(tensor: torch.Tensor, alignment: int = ALIGNMENT) -> bool:
    """True when the tensor's first element sits at a multiple of ``alignment`` bytes (empty tensors: True)."""
    return tensor.numel() == 0 or tensor.data_ptr() % alignment == 0


def align_tensors_(module: torch.nn.Module, alignment: int = ALIGNMENT) -> int:
    """Copy every CPU parameter / buffer of ``module`` that is not ``alignment``-byte aligned, in place.

    Args:
        module: a loaded model (e.g. with memory-mapped safetensors weights).
        alignment: bytes; torch's own CPU allocations are 64-byte aligned.

    Returns:
        the number of tensors copied.
    """
    copied = 0
    for sub in module.modules():
        for table in (sub._parameters, sub._buffers):
            for name, tensor in table.items():
                if tensor is None or tensor.device.type != "cpu" or is_aligned(tensor, alignment):
                    continue
                fresh = torch.empty_like(tensor, memory_format=torch.contiguous_format).copy_(tensor)
                if isinstance(tensor, torch.nn.Parameter):
                    fresh = torch.nn.Parameter(fresh, requires_grad=tensor.requires_grad)
                table[name] = fresh
                copied += 1
    return copied


def check_state_dict(
    expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], path: str | Path = "<memory>",
    model_desc: str = "",
) -> None:  # fmt: skip
    """Raise :class:`CheckpointMismatchError` unless keys and shapes match exactly.

    Args:
        expected: the model's state dict (meta tensors are fine: only shapes are read).
        state_dict: the loaded tensors.
        path: file name for the message.
        model_desc: model description for the message.
    """
    # model order for missing / wrong-shape keys, file order for unexpected ones
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        (k, tuple(state_dict[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        raise CheckpointMismatchError(str(path), missing, unexpected, wrong, model_desc)


def build_model(config: DiTConfig, device: torch.device | str = "meta", **model_kwargs: Any) -> CascadeDiT:
    """Construct a CascadeDiT on ``device`` (default meta: no memory, shapes only)."""
    with torch.device(device):
        return CascadeDiT(config, **model_kwargs)


def _describe(cfg: DiTConfig) -> str:
    return (
        f"CascadeDiT(hidden_size={cfg.hidden_size}, depth={cfg.depth}, num_heads={cfg.num_heads}, "
        f"patch_size={cfg.patch_size}, in_channels={cfg.in_channels}, out_channels={cfg.out_channels})"
    )


def load_dit(
    path: str | Path,
    *,
    config: DiTConfig | None = None,
    num_heads: int | None = None,
    layout: LayoutSpec | str = "config",
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    attention_dtype: torch.dtype | None = torch.float32,
    precision: Precision | str | None = None,
    precision_device: torch.device | str | None = None,
) -> tuple[CascadeDiT, DiTConfig]:
    """Load a DiT checkpoint strictly into a new :class:`CascadeDiT` (eval mode, no grad, aligned weights).

    Args:
        path: ``.pth`` (released format) or ``.safetensors`` (plain state dict, e.g. from the converter).
        config: model config; None infers it (:func:`infer_config`).
        num_heads: head count when inferring a non-1152-wide model without metadata.
        layout: attention layout to use; ``"config"`` keeps ``config.attn_layout``.
        dtype: parameter dtype of the whole model; None keeps the file's (float16 for the released file).
        device: where the parameters live.
        attention_dtype: see :class:`CascadeDiT` (default float32 = official recipe).
        precision: a mode of :mod:`cascadev_core.precision` (``"auto"``, ``"official"``, ``"fast"``, ``"fp32"``)
            or a resolved :class:`~cascadev_core.precision.Precision`; it sets every dtype, so ``dtype`` and
            ``attention_dtype`` must then be left at their defaults.
        precision_device: the device the model will RUN on, for resolving a mode name (default ``device``): e.g.
            load on the CPU for a GPU that ComfyUI moves the model to later.

    Returns:
        ``(model, config)`` with ``config.attn_layout`` the layout in use.
    """
    if precision is not None and (dtype is not None or attention_dtype is not torch.float32):
        raise ValueError("load_dit: pass either precision= (a mode) or dtype= / attention_dtype=, not both")
    state, metadata = load_state_dict_file(path)
    if config is None:
        config = infer_config(state, metadata, num_heads=num_heads)
    if not (isinstance(layout, str) and layout == "config"):
        config = replace(config, attn_layout=layout)
    check_config_fits_layout(config, Path(path).name)
    model = build_model(config, attention_dtype=attention_dtype)
    check_state_dict(model.state_dict(), state, path, _describe(config))
    model.load_state_dict(state, strict=True, assign=True)
    if precision is not None:
        model.to(device=device)
        apply_precision(model, precision, device if precision_device is None else precision_device)
    else:
        model.to(device=device, dtype=dtype if dtype is not None else state["x_embedder.proj.weight"].dtype)
    align_tensors_(model)  # what was not copied by a cast or a move still points into the file
    model.eval().requires_grad_(False)
    return model, config
