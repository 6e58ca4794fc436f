"""Configuration of the CascadeV DiT (the latent diffusion part of the LDM-VAE decoder).

:class:`DiTConfig` holds the constructor arguments of the official ``PixArt`` class of CascadeV
(``patch/PixArt.py``) plus the two pipeline constants the DiT is used with (latent channels, scale factor).
``attn_layout`` says which grid-attention layout each block uses (see :mod:`cascadev_core.attention_layouts`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .attention_layouts import LayoutSpec, layout_to_json, resolve_layout

_INT_FIELDS = (
    "patch_size",
    "hidden_size",
    "depth",
    "num_heads",
    "in_channels",
    "out_channels",
    "lats_per_vid",
    "input_size",
    "latent_channels",
)
# fields read from a reference json constructor section (same names as the official PixArt arguments)
_JSON_FIELDS = (
    "patch_size",
    "hidden_size",
    "depth",
    "num_heads",
    "mlp_ratio",
    "in_channels",
    "out_channels",
    "pe_interpolation",
    "lats_per_vid",
)


@dataclass
class DiTConfig:
    """Sizes of a CascadeV DiT. The defaults are the released ``s1024.effn-f32`` model.

    Attributes:
        patch_size: side of the square patches of the patch embedding (tokens = latent pixels / patch_size^2).
        hidden_size: token width D. Must be divisible by ``num_heads`` and by 6 (position embedding: D/3
            temporal + D/3 column + D/3 row, each an even sin/cos width).
        depth: number of transformer blocks.
        num_heads: attention heads (head_dim = hidden_size / num_heads).
        mlp_ratio: MLP hidden width = int(hidden_size * mlp_ratio).
        in_channels: model input channels (4 noisy latent + 16 effnet conditioning).
        out_channels: model output channels (4 epsilon + 4 learned-variance values).
        pe_interpolation: spatial positions are (row / pe_interpolation, column / pe_interpolation).
        lats_per_vid: latent frames per video window (the temporal length L of one attention sequence).
        input_size: latent tile size the sampler feeds the model (not a weight property).
        latent_channels: channels of the latent being denoised (first ``latent_channels`` of the input).
        scale_factor: latent scale (multiplies the upsampled conditioning and the DiT latents).
        attn_layout: grid-attention layout: a preset name (``"official"``, ``"full"``, ``"paper"``,
            ``"walt"``), ``None`` (all full) or a list of per-block entries cycled over the depth.
    """

    patch_size: int = 2
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    in_channels: int = 20
    out_channels: int = 8
    pe_interpolation: float = 2.0
    lats_per_vid: int = 8
    input_size: int = 128
    latent_channels: int = 4
    scale_factor: float = 0.13025
    attn_layout: LayoutSpec = "official"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ValueError naming the offending field if the sizes cannot build a model."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"DiTConfig.{name} must be a positive int, got {value!r}")
        for name in ("mlp_ratio", "pe_interpolation", "scale_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"DiTConfig.{name} must be a positive number, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"DiTConfig.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.hidden_size % 6:
            raise ValueError(
                f"DiTConfig.hidden_size={self.hidden_size} must be divisible by 6: the position embedding "
                "splits it into 3 equal parts (temporal, column, row), each an even-width sin/cos embedding"
            )
        mlp_hidden = self.hidden_size * self.mlp_ratio
        if mlp_hidden != int(mlp_hidden):
            raise ValueError(
                f"DiTConfig.mlp_ratio={self.mlp_ratio} times hidden_size={self.hidden_size} is not an integer"
            )
        if self.in_channels < self.latent_channels:
            raise ValueError(
                f"DiTConfig.in_channels={self.in_channels} is smaller than latent_channels={self.latent_channels}"
            )
        if self.input_size % self.patch_size:
            raise ValueError(f"DiTConfig.input_size={self.input_size} is not divisible by patch_size={self.patch_size}")
        try:
            resolve_layout(self.attn_layout, self.depth)
        except ValueError as err:
            raise ValueError(f"DiTConfig.attn_layout is invalid: {err}") from None

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the block MLP."""
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def pred_sigma(self) -> bool:
        """True when the model also predicts the variance (out_channels = 2 * latent_channels)."""
        return self.out_channels == 2 * self.latent_channels

    # ------------------------------------------------------------------ constructors
    @classmethod
    def s1024(cls) -> DiTConfig:
        """The released model (``configs/s1024.effn-f32.py``: PixArt_XL_2, 28 x 1152, 16 heads, 456M)."""
        return cls()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiTConfig:
        """Build from :meth:`to_dict` output (unknown keys raise, so typos are not silently dropped)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DiTConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the layout as preset name or list of plain entries)."""
        data = asdict(self)
        data["attn_layout"] = layout_to_json(self.attn_layout)
        return data

    def to_json(self) -> str:
        """:meth:`to_dict` as a compact JSON string (used as safetensors metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_reference_json(
        cls, path_or_dict: str | Path | dict[str, Any], layout_name: str | None = None, **overrides: Any
    ) -> DiTConfig:
        """Build a config from a reference description such as ``dit_tiny.json`` or ``manifest_s1024.json``.

        Reads the ``constructor`` section (or ``model`` for manifest files). Keys may carry a parenthesised
        note (``"input_size (latent, = tile size)"``); ``attn_strides`` is either one layout or a dict of
        named layouts, ``input_size`` either an int or a dict of named sizes.

        Args:
            path_or_dict: path of the json file, or its already parsed content.
            layout_name: which named ``attn_strides`` layout to use; None picks the only (or first) one.
            **overrides: DiTConfig fields that replace the values read from the file.

        Returns:
            the DiTConfig.
        """
        if isinstance(path_or_dict, dict):
            doc = path_or_dict
        else:
            doc = json.loads(Path(path_or_dict).read_text())
        section = doc.get("constructor") or doc.get("model")
        if not isinstance(section, dict):
            raise ValueError("reference json has neither a 'constructor' nor a 'model' section")
        raw = {_strip_note(k): v for k, v in section.items()}

        kwargs: dict[str, Any] = {}
        for name in _JSON_FIELDS:
            if name in raw:
                kwargs[name] = raw[name]
        missing = [n for n in ("hidden_size", "depth", "num_heads") if n not in kwargs]
        if missing:
            raise ValueError(f"reference json constructor lacks {', '.join(missing)}")
        if "out_channels" not in kwargs and "pred_sigma" in raw:
            kwargs["out_channels"] = 8 if raw["pred_sigma"] else 4

        size = raw.get("input_size")
        if isinstance(size, dict):
            tile = [v for k, v in size.items() if "tile" in k]
            size = tile[0] if tile else next(iter(size.values()))
        if size is not None:
            kwargs["input_size"] = int(size)

        strides = raw.get("attn_strides")
        if isinstance(strides, dict):
            if not strides:
                raise ValueError("reference json attn_strides is an empty dict")
            if layout_name is None:
                layout_name = next(iter(strides))
            if layout_name not in strides:
                raise ValueError(f"layout {layout_name!r} not in reference json (has {', '.join(map(repr, strides))})")
            kwargs["attn_layout"] = strides[layout_name]
        elif "attn_strides" in raw:
            if layout_name is not None:
                raise ValueError("reference json has a single attn_strides layout; layout_name must be None")
            kwargs["attn_layout"] = strides
        kwargs.update(overrides)
        return cls(**kwargs)


def _strip_note(key: str) -> str:
    """``"input_size (latent, = tile size)"`` -> ``"input_size"``."""
    return re.sub(r"\s*\(.*\)\s*$", "", key).strip()
