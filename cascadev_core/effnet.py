"""StableCascade's EfficientNetV2-S "effnet" encoder, as CascadeV uses it, in plain torch.

The module tree reproduces ``torchvision.models.efficientnet_v2_s().features`` key for key (``backbone.*``) so the
released ``effnet_encoder.safetensors`` loads strictly, followed by the 16-channel ``mapper``. torchvision is not
imported: the architecture is small enough to spell out, and the core must not depend on it.

Inference semantics are torchvision's ``eval()``: BatchNorm with running statistics (eps 1e-3 in the backbone,
the default 1e-5 in the affine-free mapper norm), stochastic depth off (identity).

Public API:

* :class:`EfficientNetEncoder` - ``[N, 3, H, W]`` normalised RGB -> ``[N, 16, ceil(H/32), ceil(W/32)]``.
* :func:`preprocess_frames` / :func:`encode_video` - the official ``evae_encode`` (``[B, 3, T, H, W]`` in [-1, 1]
  -> ``[B, 16, T, H/32, W/32]``).
* :func:`load_effnet_state_dict` / :func:`load_effnet_encoder` - strict loading of a released checkpoint.
* :func:`recipe_state_dict` / :func:`recipe_tensor` / :func:`tensor_sha256` - the deterministic random weights of
  the reference fixtures (``effnet_tiny.json`` "weights_recipe").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import format_key_list
from .progress import Progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LATENT_CHANNELS = 16
DOWNSCALE = 32

# ---------------------------------------------------------------------------------------------------------------
# Architecture (torchvision efficientnet_v2_s, width/depth multiplier 1.0)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stage:
    fused: bool
    expand_ratio: int
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    layers: int


# torchvision `_efficientnet_conf("efficientnet_v2_s")`
_V2_S_STAGES = (
    _Stage(True, 1, 3, 1, 24, 24, 2),
    _Stage(True, 4, 3, 2, 24, 48, 4),
    _Stage(True, 4, 3, 2, 48, 64, 4),
    _Stage(False, 4, 3, 2, 64, 128, 6),
    _Stage(False, 6, 3, 1, 128, 160, 9),
    _Stage(False, 6, 3, 2, 160, 256, 15),
)
_LAST_CHANNELS = 1280
_BN_EPS = 1e-3  # torchvision uses partial(BatchNorm2d, eps=1e-3) for the V2 models


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """``Conv2d(bias=False)`` (index 0) + ``BatchNorm2d(eps=1e-3)`` (index 1) + optional SiLU (index 2)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=_BN_EPS),
        ]
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision ``SqueezeExcitation`` with SiLU / Sigmoid: ``x * sigmoid(fc2(silu(fc1(avgpool(x)))))``."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(F.silu(self.fc1(self.avgpool(x))))
        return torch.sigmoid(s) * x


class FusedMBConv(nn.Module):
    """Fused inverted residual (``block`` keys as torchvision); residual when stride 1 and cin == cout."""

    def __init__(self, expand_ratio: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = _make_divisible(cin * expand_ratio)
        if hidden != cin:
            self.block = nn.Sequential(
                ConvNormAct(cin, hidden, kernel, stride), ConvNormAct(hidden, cout, 1, act=False)
            )
        else:
            self.block = nn.Sequential(ConvNormAct(cin, cout, kernel, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y  # stochastic depth is the identity in eval


class MBConv(nn.Module):
    """Inverted residual with depthwise conv and squeeze-excitation (``block`` keys as torchvision)."""

    def __init__(self, expand_ratio: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = _make_divisible(cin * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvNormAct(cin, hidden, 1))
        layers += [
            ConvNormAct(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            ConvNormAct(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y


def efficientnet_v2_s_features() -> nn.Sequential:
    """``torchvision.models.efficientnet_v2_s().features`` (same modules, same state-dict keys), untrained."""
    first = _V2_S_STAGES[0].in_ch
    feats: list[nn.Module] = [ConvNormAct(3, first, 3, stride=2)]
    for st in _V2_S_STAGES:
        cls = FusedMBConv if st.fused else MBConv
        blocks = []
        for i in range(st.layers):
            cin, stride = (st.in_ch, st.stride) if i == 0 else (st.out_ch, 1)
            blocks.append(cls(st.expand_ratio, st.kernel, stride, cin, st.out_ch))
        feats.append(nn.Sequential(*blocks))
    feats.append(ConvNormAct(_V2_S_STAGES[-1].out_ch, _LAST_CHANNELS, 1))
    return nn.Sequential(*feats)


class EfficientNetEncoder(nn.Module):
    """StableCascade ``EfficientNetEncoder``: ``backbone`` (EfficientNetV2-S features) then ``mapper``.

    ``forward(x [N, 3, H, W]) -> [N, 16, ceil(H/32), ceil(W/32)]``; ``x`` is ImageNet-normalised RGB
    (see :func:`preprocess_frames`). Built in eval mode.
    """

    def __init__(self, c_latent: int = LATENT_CHANNELS):
        super().__init__()
        self.backbone = efficientnet_v2_s_features()
        self.mapper = nn.Sequential(
            nn.Conv2d(_LAST_CHANNELS, c_latent, kernel_size=1, bias=False),
            nn.BatchNorm2d(c_latent, affine=False),
        )
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapper(self.backbone(x))


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing and video encoding (official evae_encode)
# ---------------------------------------------------------------------------------------------------------------


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> ``Normalize(mean, std)(0.5 * (x + 1))`` in x's dtype."""
    x = 0.5 * (x + 1)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return x.sub(mean).div(std)  # torchvision F.normalize: tensor.sub_(mean).div_(std)


def _check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video: expected [B, 3, T, H, W], got {tuple(video.shape)}")


def preprocess_frames(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, T, H, W]`` RGB in [-1, 1] -> ``[B*T, 3, H, W]`` ImageNet-normalised (frame-major per video).

    Exactly ``Normalize(mean, std)(0.5 * (x + 1))`` of the official ``evae_encode``, in the input dtype.
    """
    _check_video(video)
    b, c, t, h, w = video.shape
    return _normalize(video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))


@torch.no_grad()
def encode_video(
    encoder: nn.Module,
    video: torch.Tensor,
    frames_per_call: int = 1,
    dtype: torch.dtype | None = None,
    on_step=None,
    should_stop=None,
    size: tuple[int, int] | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """Official ``evae_encode``: ``video [B, 3, T, H, W]`` -> latents ``[B, 16, T, ceil(H'/32), ceil(W'/32)]``.

    Args:
        encoder: an :class:`EfficientNetEncoder` (eval mode) on the target device.
        video: RGB frames on any device, e.g. a view of a whole video on the CPU: only the frames of one call are
            moved to the encoder's device, rescaled, resized and preprocessed (a long video never exists there in
            full, nor as a second full-size copy anywhere).
        frames_per_call: frames per encoder call (taken in frame-major order over ``B*T``, as the official code).
            1 (default) is the official call pattern and reproduces the reference bit for bit; larger batches are
            faster but differ by ~1e-7 (other conv kernels).
        dtype: compute dtype (default: the encoder's parameter dtype; the official pipeline uses fp16).
        on_step, should_stop: :class:`~cascadev_core.progress.Progress` hooks, one unit per encoder call.
        size: ``(H', W')`` to resize each frame to first (bicubic, clamped to the value range), e.g. from
            :func:`cascadev_core.sizing.cascade_size`; None keeps ``(H, W)``.
        value_range: the range of ``video``'s values: ``(-1, 1)`` (the official input) or ``(0, 1)`` (an image).

    Returns latents in float32 (the encoder output cast up), on the encoder's device.
    """
    _check_video(video)
    if frames_per_call < 1:
        raise ValueError(f"frames_per_call: expected >= 1, got {frames_per_call}")
    lo, hi = value_range
    if (lo, hi) not in ((-1.0, 1.0), (0.0, 1.0)):
        raise ValueError(f"value_range: expected (-1, 1) or (0, 1), got {value_range}")
    p = next(encoder.parameters())
    dtype = dtype or p.dtype
    b, _, t = video.shape[:3]
    n = b * t
    prog = Progress(math.ceil(n / frames_per_call), on_step, should_stop)
    outs = []
    for s in range(0, n, frames_per_call):
        prog.check()
        frames = torch.stack([video[i // t, :, i % t] for i in range(s, min(n, s + frames_per_call))])
        frames = frames.to(p.device)
        if lo == 0.0:
            frames = frames.float() * 2 - 1
        if size is not None and tuple(frames.shape[-2:]) != tuple(size):
            frames = F.interpolate(frames.float(), size=tuple(size), mode="bicubic", align_corners=False).clamp(-1, 1)
        outs.append(encoder(_normalize(frames.to(dtype))).float())
        prog.advance()
    lat = torch.cat(outs, 0)
    _, c, h, w = lat.shape
    return lat.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint loading
# ---------------------------------------------------------------------------------------------------------------


def _strip_prefix(sd: Mapping[str, torch.Tensor], expected: Iterable[str]) -> dict[str, torch.Tensor]:
    """Drop a common wrapper prefix (``effnet.``, ``module.``...) when that makes the keys match."""
    expected = set(expected)
    if set(sd) & expected:
        return dict(sd)
    for prefix in ("effnet.", "module.", "encoder.", "model."):
        stripped = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if stripped and set(stripped) & expected:
            return stripped
    return dict(sd)


def load_effnet_state_dict(
    model: EfficientNetEncoder, sd: Mapping[str, torch.Tensor], name: str = "state dict"
) -> EfficientNetEncoder:
    """Strictly load ``sd`` (keys ``backbone.*``, ``mapper.*``; a wrapper prefix is stripped) into ``model``.

    Raises :class:`~cascadev_core.checkpoint.CheckpointMismatchError` (a ``ValueError``) listing missing,
    unexpected and wrong-shape keys.
    """
    from .checkpoint import check_state_dict

    sd = _strip_prefix(sd, model.state_dict().keys())
    check_state_dict(model.state_dict(), sd, name, "the effnet encoder (EfficientNetEncoder)")
    model.load_state_dict(sd, strict=True)
    return model


def load_effnet_encoder(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> EfficientNetEncoder:
    """Build an :class:`EfficientNetEncoder` from ``effnet_encoder.safetensors`` (or a ``.pth`` state dict,
    optionally wrapped in ``{"state_dict": ...}``), read by :func:`cascadev_core.checkpoint.load_state_dict_file`.

    Loading is strict: a wrong file raises ``ValueError`` naming the missing/unexpected keys and bad shapes.
    The official pipeline runs the encoder in fp16 (``dtype=torch.float16``); fp32 differs by ~4e-4.
    """
    from .checkpoint import load_state_dict_file

    model = EfficientNetEncoder()
    load_effnet_state_dict(model, load_state_dict_file(path)[0], name=str(path))
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------------------------
# Deterministic recipe weights (reference fixtures, effnet_tiny.json "weights_recipe")
# ---------------------------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64_uniform(seed: int, n: int) -> np.ndarray:
    """``u[i]``, i < n: splitmix64 of ``seed + (i+1) * golden`` (uint64, wrapping) as float64 in [0, 1)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def recipe_key_seed(base_seed: int, key: str) -> int:
    """``int.from_bytes(sha256(f"{base_seed}:{key}").digest()[:8], "little")``."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{key}".encode()).digest()[:8], "little")


def recipe_tensor(base_seed: int, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One recipe tensor (float32; int64 scalar 0 for ``num_batches_tracked``), computed in float64."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    n = int(np.prod(shape, dtype=np.int64))
    u = splitmix64_uniform(recipe_key_seed(base_seed, key), n)
    w = 2.0 * u - 1.0
    if len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        v = w * math.sqrt(3) / math.sqrt(fan_in)
    elif key.endswith("running_mean"):
        v = 0.1 * w
    elif key.endswith("running_var"):
        v = 1.0 + 0.5 * u
    elif key.endswith("weight"):
        v = 1.0 + 0.1 * w
    elif key.endswith("bias"):
        v = 0.1 * w
    else:
        raise ValueError(f"recipe: no rule for key {key!r} with shape {shape}")
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of the tensor's little-endian bytes (float32 / int64 as stored)."""
    a = t.detach().cpu().contiguous().numpy()
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def recipe_state_dict(spec: Mapping[str, Mapping], base_seed: int, verify: bool = True) -> dict[str, torch.Tensor]:
    """Regenerate every recipe tensor of ``spec`` (``{key: {"shape", "sha256"?}}``, as in ``effnet_tiny.json``).

    With ``verify`` each tensor's sha256 is compared with the recorded one; a mismatch raises ``ValueError``.
    """
    sd = {}
    bad = []
    for key, info in spec.items():
        t = recipe_tensor(base_seed, key, tuple(info["shape"]))
        if verify and info.get("sha256") and tensor_sha256(t) != info["sha256"]:
            bad.append(key)
        sd[key] = t
    if bad:
        raise ValueError(f"recipe weights: sha256 mismatch for {len(bad)} keys: {format_key_list(sorted(bad))}")
    return sd


def recipe_encoder(spec_json: str | Path, verify: bool = True) -> EfficientNetEncoder:
    """:class:`EfficientNetEncoder` with the weights of an ``effnet_tiny.json``-style recipe file (strict load)."""
    import json

    meta = json.loads(Path(spec_json).read_text())
    sd = recipe_state_dict(meta["state_dict_keys"], int(meta["recipe_base_seed"]), verify=verify)
    return load_effnet_state_dict(EfficientNetEncoder(), sd, name=str(spec_json)).requires_grad_(False)
