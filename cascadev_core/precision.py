"""Precision modes of the CascadeV DiT: one mode name and a device give every dtype the model runs in.

Modes (:data:`PRECISION_MODES`):

* ``"official"`` -- the released recipe. On accelerators: fp16 weights and token stream, q/k/v and attention in
  fp32, timesteps rounded to fp16 (``model.half()`` under fp16 autocast with ``fp32_attention=True``). On CPU:
  fp32 (the official code has no CPU recipe; fp16 matmuls on CPUs are slow and emulated).
* ``"fast"`` -- bf16 matmuls and attention (fp16 on CUDA GPUs without bf16), fp32 where the numbers need it: the
  token stream with its residual sums, the timestep embedding and ``t_block``, the modulation, LayerNorms, the
  final layer (and, outside the model, the scheduler state: the refine loop is fp32 in every mode). On a CPU
  without native bf16 instructions (``avx512_bf16`` / AMX) bf16 is emulated and slower, so ``fast`` is fp32 there.
* ``"fp32"`` -- everything in float32.
* ``"auto"`` -- ``fast`` where ``bench/bench_precision.py`` showed it safe, else ``official`` (see
  :func:`auto_mode`).

Safety threshold for ``auto``: a mode may replace the official recipe when the final latents of a whole 8-step
refine (EulerA, released width and depth) differ from the fp32 run by at most :data:`AUTO_MAX_REFINE_REL_ERROR` of
their max abs value, i.e. 1%. Why 1%: the official fp16 recipe itself moves a single forward by ~1% of the
output's max (0.041 on |y| <= 4.4 for the reference model, tests/core/test_checkpoint.py), so 1% is the deviation
the released pipeline already accepts; and one 8-bit grey level is 0.8% of the decoded [-1, 1] range. Measured on
CPU (2026-12-02, bench/README.md, random weights drawn like the reference model's, 28 blocks): ``fast`` = bf16
with the fp32 stream gives 0.33% (forward 0.59%), so ``auto`` is ``fast`` on CPUs with native bf16; the same with
a bf16 stream gives 1.04% and would not pass, which is why the stream stays fp32. On CUDA ``fast`` has not been
measured yet: ``auto`` stays ``official`` there until ``bench/bench_precision.py --device cuda`` shows it within
the threshold (then add ``"cuda"`` to ``_FAST_MEASURED_SAFE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dit import CascadeDiT

PRECISION_MODES = ("auto", "official", "fast", "fp32")
AUTO_MAX_REFINE_REL_ERROR = 0.01
"""Largest max-abs error of 8-step refine latents vs fp32, relative to their max abs, that ``auto`` accepts."""

# device types where bench/bench_precision.py measured fast within AUTO_MAX_REFINE_REL_ERROR
_FAST_MEASURED_SAFE = frozenset({"cpu"})


@dataclass(frozen=True)
class Precision:
    """The dtypes a :class:`~cascadev_core.dit.CascadeDiT` runs in (see :mod:`cascadev_core.dit`).

    Attributes:
        mode: the resolved mode (``"official"``, ``"fast"`` or ``"fp32"``; never ``"auto"``).
        device_type: the device type it was resolved for (``"cpu"``, ``"cuda"``, ...).
        stream_dtype: token stream, embedders, modulation, final layer (every parameter outside the block linears).
        matmul_dtype: the block linears ``qkv``, ``proj``, ``fc1``, ``fc2``.
        attention_dtype: q/k/v and the attention kernel.
        round_timestep: timesteps rounded to the stream dtype before embedding (the official fp16 recipe).
    """

    mode: str
    device_type: str
    stream_dtype: torch.dtype
    matmul_dtype: torch.dtype
    attention_dtype: torch.dtype
    round_timestep: bool

    @property
    def label(self) -> str:
        """E.g. ``"fast on cpu: bf16 matmuls, bf16 attention, fp32 stream"``."""
        names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}
        rounded = ", timesteps rounded" if self.round_timestep else ""
        return (
            f"{self.mode} on {self.device_type}: {names.get(self.matmul_dtype, self.matmul_dtype)} matmuls, "
            f"{names.get(self.attention_dtype, self.attention_dtype)} attention, "
            f"{names.get(self.stream_dtype, self.stream_dtype)} stream{rounded}"
        )


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (x86 ``avx512_bf16`` or AMX-BF16, Arm ``bf16``)."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # older torch: no capability table
        return False
    return any(bool(caps.get(flag)) for flag in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))


def _device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected a torch.device or a name like 'cpu' / 'cuda:0', got {device!r}") from err


def fast_dtype(device: torch.device | str) -> torch.dtype:
    """The low-precision dtype of ``fast`` on ``device``: bf16, fp16 on CUDA GPUs without bf16, fp32 on CPUs
    without native bf16."""
    dev = _device(device)
    if dev.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if dev.type == "mps":
        return torch.float16
    return torch.bfloat16


def auto_mode(device: torch.device | str) -> str:
    """What ``auto`` means on ``device``: ``fast`` where it was measured within the threshold and runs natively
    (a real low-precision dtype), else ``official`` (see the module docstring)."""
    dev = _device(device)
    if dev.type in _FAST_MEASURED_SAFE and fast_dtype(dev) != torch.float32:
        return "fast"
    return "official"


def resolve_precision(mode: str, device: torch.device | str) -> Precision:
    """The dtypes of ``mode`` on ``device``.

    Args:
        mode: one of :data:`PRECISION_MODES`.
        device: where the model will run (``"cpu"``, ``"cuda"``, a ``torch.device``), not necessarily where its
            weights are now.

    Returns:
        the :class:`Precision` (``mode`` resolved, never ``"auto"``).
    """
    if not isinstance(mode, str) or mode not in PRECISION_MODES:
        raise ValueError(f"precision: expected one of {', '.join(PRECISION_MODES)}, got {mode!r}")
    dev = _device(device)
    if mode == "auto":
        mode = auto_mode(dev)
    f32 = torch.float32
    if mode == "fp32" or (mode == "official" and dev.type == "cpu"):
        return Precision(mode, dev.type, f32, f32, f32, False)
    if mode == "official":
        return Precision(mode, dev.type, torch.float16, torch.float16, f32, True)
    low = fast_dtype(dev)
    return Precision("fast", dev.type, f32, low, low, False)


def apply_precision(
    model: CascadeDiT, precision: Precision | str, device: torch.device | str | None = None
) -> CascadeDiT:
    """Cast a :class:`~cascadev_core.dit.CascadeDiT` to a precision mode, in place (weights stay where they are).

    Args:
        model: the DiT (any parameter dtypes: each tensor is cast from what it holds, so modes can be switched).
        precision: a :class:`Precision`, or a mode name resolved for ``device``.
        device: where the model will run (needed with a mode name; default: where its weights are now).

    Returns:
        ``model`` (cast), for chaining.
    """
    if not isinstance(model, CascadeDiT):
        raise TypeError(f"model: expected a CascadeDiT, got {type(model).__name__}")
    if isinstance(precision, str):
        precision = resolve_precision(precision, model.x_embedder.proj.weight.device if device is None else device)
    elif not isinstance(precision, Precision):
        raise TypeError(f"precision: expected a mode name or a Precision, got {type(precision).__name__}")
    model.to(dtype=precision.stream_dtype)
    for block in model.blocks:
        for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
            linear.to(dtype=precision.matmul_dtype)
    model.attention_dtype = precision.attention_dtype
    model.round_timestep = precision.round_timestep
    return model


def compile_blocks(model: CascadeDiT, **compile_kwargs) -> CascadeDiT:
    """``torch.compile`` every transformer block of the DiT in place (off by default; see bench/README.md).

    Each block is compiled on its first call per input shape and attention grouping (the released schedule has
    three: spatial windows, temporal chunks, full). Measured on a 2-core CPU (bench/bench_compile_blocks.py):
    ``fast`` calls 1.57x faster, fp32 calls 0.87x (slower), after a compile of 33-210 s with a cold cache (3 s
    warm). It needs a C++ compiler on CPUs, so it stays an option. The weights and the precision are unchanged;
    :func:`apply_precision` afterwards needs a fresh compile (call this again).

    Args:
        model: the DiT.
        **compile_kwargs: passed to ``torch.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``, ``dynamic=False``).

    Returns:
        ``model``.
    """
    if not isinstance(model, CascadeDiT):
        raise TypeError(f"model: expected a CascadeDiT, got {type(model).__name__}")
    for block in model.blocks:
        block.compile(**compile_kwargs)
    return model
