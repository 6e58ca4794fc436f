"""Precision modes of the DiT: time per model call and agreement with fp32, on the forward and a whole refine.

Usage::

    python bench/bench_precision.py [--quick] [--device cpu|cuda] [--official-src DIR] [--threads N]

Model: the released width (hidden 1152, 16 heads, MLP ratio 4, the official grid layout cycled over the depth)
with random weights drawn like the reference fixtures' tiny model (the official initialisation with the zero
tensors and the timestep MLP redrawn, so every path matters; ``shared/reference/cascadev/dit_tiny.json``).
Absolute agreement depends on the weights; real weights may differ.

* Timing: ``--time-depth`` blocks (default 4; 28 on CUDA) on one window of 8 frames x ``--time-tile``^2 latent
  pixels (default 32: 2,048 tokens; 128 = the released tile on CUDA); every mode is timed once per round, modes interleaved, median of ``--rounds``;
  time per call scales with the depth, the ratios do not.
* Agreement: ``--acc-depth`` blocks (default 28, the released depth) on a 16^2 tile: one forward at t = 500,
  and a whole refine (EulerA, 8 steps, the official options, seed 0) whose final latents are compared with the fp32
  run: max abs error and that error relative to the latents' max abs (``rel``). ``rel`` decides ``auto``:
  a mode is ``auto``-safe when ``rel <= cascadev_core.precision.AUTO_MAX_REFINE_REL_ERROR`` (1%, see there).
* ``fast, bf16 stream`` and ``fast, fp32 attention`` are not modes: they show what the choices inside ``fast``
  (an fp32 token stream, attention in the low dtype) cost and buy.
* The official implementation: with ``--official-src DIR`` (a PixArt-sigma checkout with CascadeV installed into
  it as CascadeV's ``install.sh`` does, and its dependencies) its ``PixArt`` class is timed on the same weights and
  input, in its own recipe for the device (fp32 on CPU; on CUDA ``.half()`` under fp16 autocast with fp32 q/k/v);
  without xformers (CPU) its attention call is replaced by exact SDPA as in the reference fixtures. Without the
  option the ``official`` precision mode stands in for it: the parity tests (tests/core/test_dit_parity.py,
  test_refine_parity.py) show that mode is numerically the official implementation.

Prints a table per part and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cascadev_core.config import DiTConfig  # noqa: E402
from cascadev_core.dit import CascadeDiT  # noqa: E402
from cascadev_core.precision import (  # noqa: E402
    AUTO_MAX_REFINE_REL_ERROR,
    PRECISION_MODES,
    Precision,
    apply_precision,
    cpu_has_native_bf16,
    resolve_precision,
)
from cascadev_core.refine import RefineOptions, refine  # noqa: E402

NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ------------------------------------------------------------------------------------------------ model
def reference_like_state(config: DiTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 weights drawn like ``dit_tiny.safetensors`` (see ``dit_tiny.json``, weights_init).

    Official init: xavier-uniform Linear / patch weights, ``scale_shift_table`` N(0, 1/D); then redrawn: all
    biases N(0, 0.02^2), timestep MLP and ``t_block`` weights N(0, 0.05^2), ``final_layer.linear.weight``
    N(0, 1/D).
    """
    gen = torch.Generator().manual_seed(seed)
    d = config.hidden_size
    state = {}
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in CascadeDiT(config).state_dict().items()}
    for key, shape in shapes.items():
        if key.endswith("bias"):
            value = torch.randn(shape, generator=gen) * 0.02
        elif key.startswith(("t_embedder.", "t_block.")):
            value = torch.randn(shape, generator=gen) * 0.05
        elif key.endswith("scale_shift_table") or key == "final_layer.linear.weight":
            value = torch.randn(shape, generator=gen) / math.sqrt(d)
        else:  # xavier uniform on the [out, in * k * k] view
            fan_out, fan_in = shape[0], math.prod(shape[1:])
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            value = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        state[key] = value
    return state


def build(config: DiTConfig, state: dict[str, torch.Tensor], precision: Precision, device: str) -> CascadeDiT:
    model = CascadeDiT(config).eval().requires_grad_(False)
    model.load_state_dict(state)
    return apply_precision(model.to(device), precision)


# ------------------------------------------------------------------------------------------------ official
def official_model(src: Path, config: DiTConfig, state: dict[str, torch.Tensor], device: str):
    """The official ``PixArt`` from a user's checkout, with the same weights, in its own recipe for the device.

    Returns ``(call, note)`` where ``call(x, t)`` runs one forward.
    """
    import types

    sys.path.insert(0, str(src))
    note = "official PixArt from " + str(src)
    try:
        import xformers.ops  # noqa: F401
    except ImportError:  # CPU: the shim the reference fixtures used (exact softmax attention)
        shim = types.ModuleType("xformers.ops")

        def memory_efficient_attention(q, k, v, attn_bias=None, p=0.0, **_):
            assert attn_bias is None and p == 0.0
            out = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            )
            return out.transpose(1, 2).contiguous()

        shim.memory_efficient_attention = memory_efficient_attention
        pkg = types.ModuleType("xformers")
        pkg.ops = shim
        sys.modules.setdefault("xformers", pkg)
        sys.modules.setdefault("xformers.ops", shim)
        note += " (xformers absent: exact SDPA shim, as in the reference fixtures)"
    from diffusion.model.builder import build_model

    layout = [list(e) if e is not None else None for e in _official_strides(config)]
    # as recon/refine_latent.py builds it (grad checkpointing flag, fp32_attention), at this depth
    model = build_model(
        "PixArt", True, True, input_size=config.input_size, learn_sigma=True, pred_sigma=True,
        in_channels=config.in_channels, pe_interpolation=config.pe_interpolation, attn_strides=layout,
        lats_per_vid=config.lats_per_vid, depth=config.depth, hidden_size=config.hidden_size,
        num_heads=config.num_heads, patch_size=config.patch_size, mlp_ratio=config.mlp_ratio,
    ).eval().to(device)  # fmt: skip
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"official model does not take our weights: missing {missing}, unexpected {unexpected}")
    model.requires_grad_(False)
    if device == "cpu":
        return (lambda x, t: model(x, t)), note + ", fp32"
    model = model.half()

    def call(x, t):
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return model(x, t)

    return call, note + ", fp16 under autocast, fp32 attention"


def _official_strides(config: DiTConfig):
    from cascadev_core.attention_layouts import FULL, GridPartition, resolve_layout

    out = []
    for entry in resolve_layout(config.attn_layout, config.depth):
        if entry is FULL:
            out.append(None)
        elif isinstance(entry, GridPartition):
            out.append((entry.ts, entry.xs))
        else:
            raise ValueError(f"the official code has no layout entry {entry.label}")
    return out


# ------------------------------------------------------------------------------------------------ measuring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(calls: dict[str, callable], x: torch.Tensor, t: torch.Tensor, rounds: int, device: str) -> dict:
    """Median seconds per call of each callable, interleaved (one call each per round, order rotated)."""
    names = list(calls)
    for name in names:  # warm-up (kernel selection, lazy init, position-embedding cache)
        with torch.no_grad():
            calls[name](x, t)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                calls[name](x, t)
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {n: statistics.median(s) for n, s in samples.items()}


def _errors(got: torch.Tensor, ref: torch.Tensor) -> dict:
    diff = (got.float() - ref).abs()
    return {
        "max_abs": diff.max().item(),
        "rel": diff.max().item() / ref.abs().max().item(),
        "rms": diff.pow(2).mean().sqrt().item(),
        "ref_max": ref.abs().max().item(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="depth 2 / 4, tile 16, 1 round: a smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--official-src", type=Path, default=None, help="PixArt-sigma checkout with CascadeV in it")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--time-depth", type=int, default=None)
    parser.add_argument("--time-tile", type=int, default=None)
    parser.add_argument("--acc-depth", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--timing-only", action="store_true", help="skip the agreement part")
    args = parser.parse_args(argv)
    device = args.device
    cuda = device.startswith("cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    time_depth = args.time_depth or (2 if args.quick else 4 if not cuda else 28)
    time_tile = args.time_tile or (16 if args.quick else 32 if not cuda else 128)
    acc_depth = args.acc_depth or (4 if args.quick else 28)
    rounds = args.rounds or (1 if args.quick else 3 if not cuda else 10)

    # ---- what each mode means here
    precisions = {m: resolve_precision(m, device) for m in PRECISION_MODES}
    variants: dict[str, Precision] = {m: precisions[m] for m in ("official", "fast", "fp32")}
    fast = precisions["fast"]
    if fast.matmul_dtype != torch.float32:  # the choices inside fast, measured
        low, f32 = fast.matmul_dtype, torch.float32
        variants[f"fast, {NAMES[low]} stream"] = Precision("fast*", fast.device_type, low, low, low, False)
        variants["fast, fp32 attention"] = Precision("fast*", fast.device_type, f32, low, f32, False)
    distinct: dict[Precision, str] = {}
    for name, prec in variants.items():
        key = Precision("", prec.device_type, prec.stream_dtype, prec.matmul_dtype, prec.attention_dtype,
                        prec.round_timestep)  # fmt: skip
        distinct.setdefault(key, name)
    same_as = {name: distinct[Precision("", p.device_type, p.stream_dtype, p.matmul_dtype, p.attention_dtype,
                                        p.round_timestep)] for name, p in variants.items()}  # fmt: skip
    runs = [n for n in variants if same_as[n] == n]
    cpu_flags = {}
    if not cuda:
        caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
        cpu_flags = {k: bool(caps.get(k)) for k in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")}
    gpu = torch.cuda.get_device_name(device) if cuda else None
    print(f"device {device}{' (' + gpu + ')' if gpu else ''}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}" + (f", CPU flags {cpu_flags}, native bf16: {cpu_has_native_bf16()}"
                                           if not cuda else ""))  # fmt: skip
    for mode in PRECISION_MODES:
        print(f"  {mode:<9} -> {precisions[mode].label}")

    # ---- timing
    tcfg = DiTConfig(depth=time_depth, input_size=time_tile)
    tstate = reference_like_state(tcfg, seed=0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 20, time_tile, time_tile, generator=gen).to(device)
    t = torch.full((8,), 500.0, device=device)
    calls = {n: build(tcfg, tstate, variants[n], device) for n in runs}
    official_note = "our 'official' mode stands in for the official implementation (the parity tests show it is)"
    if args.official_src is not None:
        calls["official implementation"], official_note = official_model(args.official_src, tcfg, tstate, device)
    secs = time_calls(calls, x, t, rounds, device)
    if "official implementation" in calls:  # same numbers as our official mode?
        with torch.no_grad():
            theirs = calls["official implementation"](x, t).float()
            ours = calls[same_as["official"]](x, t).float()
        official_note += f"; its output vs our official mode: max |d| {(theirs - ours).abs().max().item():.3g}"
    reference = "official implementation" if "official implementation" in secs else same_as["official"]
    tokens = 8 * (time_tile // 2) ** 2
    print(f"\ntime per model call: hidden 1152, depth {time_depth}, 8 frames x {time_tile}^2 latent ({tokens} tokens), "
          f"median of {rounds} interleaved round(s); reference = {reference}")  # fmt: skip
    print(f"  {official_note}")
    print(f"{'mode':<26} {'s / call':>9} {'vs official':>12}")
    for name in list(variants) + (["official implementation"] if "official implementation" in secs else []):
        s = secs[same_as.get(name, name)]
        alias = f"  (= {same_as[name]})" if name in same_as and same_as[name] != name else ""
        print(f"{name:<26} {s:9.3f} {s / secs[reference]:11.3f}x{alias}")
    if "official implementation" in secs:
        print(f"our official mode / official implementation: {secs[same_as['official']] / secs[reference]:.3f}")
    del calls

    headline = {
        "bench": "precision",
        "device": gpu or device,
        "threads": torch.get_num_threads(),
        "cpu_flags": cpu_flags,
        "auto": precisions["auto"].mode,
        "reference": reference,
        "time_config": {"depth": time_depth, "tile": time_tile, "tokens": tokens, "rounds": rounds},
        "modes": {
            name: {
                "label": variants[name].label,
                "s_per_call": round(secs[same_as[name]], 4),
                "time_vs_official": round(secs[same_as[name]] / secs[reference], 3),
            }
            for name in variants
        },
    }
    if "official implementation" in secs:
        headline["official_implementation_s_per_call"] = round(secs["official implementation"], 4)
        headline["our_official_vs_official_implementation"] = round(secs[same_as["official"]] / secs[reference], 3)
    if args.timing_only:
        print(json.dumps(headline))
        return 0

    # ---- agreement with fp32
    acfg = DiTConfig(depth=acc_depth, input_size=16)
    astate = reference_like_state(acfg, seed=2)
    gen = torch.Generator().manual_seed(3)
    cond = torch.randn(1, 16, 8, 4, 4, generator=gen).to(device)
    xf = torch.randn(8, 20, 16, 16, generator=gen).to(device)
    tf = torch.full((8,), 500.0, device=device)
    fwd = {}
    for name in runs:
        model = build(acfg, astate, variants[name], device)
        with torch.no_grad():
            out = model(xf, tf)
        lat = refine(model, cond, lats_per_vid=8, input_size=16, options=RefineOptions(steps=8), seed=0)
        fwd[name] = (out.float(), lat.float())
        del model
    ref_fwd, ref_lat = fwd[same_as["fp32"]]
    acc = {}
    print(f"\nagreement with fp32: hidden 1152, depth {acc_depth}, 8 frames x 16^2 latent; forward at t = 500 "
          f"(|y| max {ref_fwd.abs().max().item():.3g}); 8-step EulerA refine (final |latent| max "
          f"{ref_lat.abs().max().item():.3g})")  # fmt: skip
    print(f"{'mode':<26} {'fwd max|d|':>10} {'fwd rel':>9} {'fwd rms':>9} {'refine max|d|':>13} {'refine rel':>10} "
          f"{'auto-safe':>9}")  # fmt: skip
    for name in variants:
        f_err = _errors(fwd[same_as[name]][0], ref_fwd)
        r_err = _errors(fwd[same_as[name]][1], ref_lat)
        safe = r_err["rel"] <= AUTO_MAX_REFINE_REL_ERROR
        acc[name] = {"forward": f_err, "refine": r_err, "auto_safe": safe}
        print(f"{name:<26} {f_err['max_abs']:10.3g} {f_err['rel']:9.2e} {f_err['rms']:9.2e} {r_err['max_abs']:13.3g} "
              f"{r_err['rel']:10.2e} {'yes' if safe else 'NO':>9}")  # fmt: skip
    print(f"auto-safe: refine rel <= {AUTO_MAX_REFINE_REL_ERROR} (cascadev_core.precision.AUTO_MAX_REFINE_REL_ERROR); "
          f"auto on {device} resolves to {precisions['auto'].mode}")  # fmt: skip

    headline["acc_config"] = {"depth": acc_depth, "tile": 16, "steps": 8}
    for name in variants:
        headline["modes"][name].update(
            forward_rel=float(f"{acc[name]['forward']['rel']:.3g}"),
            forward_max_abs=float(f"{acc[name]['forward']['max_abs']:.3g}"),
            refine_rel=float(f"{acc[name]['refine']['rel']:.3g}"),
            refine_max_abs=float(f"{acc[name]['refine']['max_abs']:.3g}"),
            auto_safe=acc[name]["auto_safe"],
        )
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
