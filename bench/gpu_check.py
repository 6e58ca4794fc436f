"""One-command GPU check, for whenever a GPU is available: precision, attention kernel, speed, memory, Ray workers.

Usage::

    python bench/gpu_check.py [--out output/gpu_check] [--skip-ray]
    python bench/gpu_check.py --cpu-smoke    # the same code paths on a tiny model on the CPU (for CI / no GPU)

Without CUDA (and without ``--cpu-smoke``) it prints why and exits 0. On one GPU it takes a few minutes. Sections:

1. precision: the released-size DiT (``DiTConfig()`` defaults: hidden 1152, depth 28, random fan-in weights) on one
   8x128x128 latent call in fp16 and bf16 (attention in fp32, the official recipe) against fp32: max |error| of the
   eps channels relative to their max |fp32| value.
2. attention kernel: which SDPA backends accept the q/k/v of one block in each dtype, and the attention kernels
   the profiler sees in one fp16 forward (flash / memory-efficient / cuDNN / math).
3. speed: seconds per 8x128x128 call (median of 3 after a warm-up) per layout: official, full, paper, in fp16.
4. memory: peak GPU memory (``torch.cuda.max_memory_allocated``) of a tiled refine of 8 frames at 2048x2048 pixels
   (256x256 latents, 9 tiles per step, 2 steps, fp16 weights), next to the fp16 weights alone.
5. Ray: the same refine on CascadeV Workers (one per GPU present) against a refine here with the same model file
   (loaded the same way: weights read from a file can take other CPU kernel paths than ones made in memory).

Each section that fails is reported as an error and the others still run. The table and the JSON go to
``--out`` (``gpu_check.txt``, ``gpu_check.json``); the last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cascadev_core.config import DiTConfig  # noqa: E402
from cascadev_core.dit import CascadeDiT  # noqa: E402
from cascadev_core.refine import RefineOptions, refine  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
LAYOUTS = ("official", "full", "paper")
SMOKE = DiTConfig(hidden_size=72, depth=4, num_heads=4, input_size=16)


class Check:
    """Runs the sections, collects their table lines and JSON figures."""

    def __init__(self, device: torch.device, config: DiTConfig, smoke: bool, skip_ray: bool) -> None:
        self.device, self.config, self.smoke, self.skip_ray = device, config, smoke, skip_ray
        self.lines: list[str] = []
        self.result: dict = {"device": self.describe(), "config": "smoke" if smoke else "released (DiTConfig())"}
        self.fp32: CascadeDiT | None = None
        self.copies: dict[torch.dtype, CascadeDiT] = {}

    def describe(self) -> str:
        if self.device.type != "cuda":
            return "cpu (smoke run)"
        props = torch.cuda.get_device_properties(self.device)
        return (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}"
        )

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def section(self, name: str, fn) -> None:
        self.say(f"\n== {name}")
        start = time.perf_counter()
        try:
            self.result[name] = fn()
        except Exception as err:  # a failing section is a finding, not the end of the check
            self.say(f"   ERROR {type(err).__name__}: {err}")
            self.result[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
        self.say(f"   ({time.perf_counter() - start:.1f} s)")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------------------------------- helpers
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def call_input(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One 8-frame tile call: ``x [8, 20, S, S]`` (noisy latent + conditioning), ``t [8]``."""
        s, frames = self.config.input_size, self.config.lats_per_vid
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(frames, self.config.in_channels, s, s, generator=gen).to(self.device)
        return x, torch.full((frames,), 500.0, device=self.device)

    def model(self, dtype: torch.dtype) -> CascadeDiT:
        """The random-weight DiT in ``dtype`` (attention in fp32), all copies from one fp32 model."""
        if self.fp32 is None:
            with torch.device(self.device):
                self.fp32 = CascadeDiT(self.config).eval().requires_grad_(False)
            self.copies[torch.float32] = self.fp32
            gen = torch.Generator(self.device).manual_seed(0)
            with torch.no_grad():
                for name, p in self.fp32.named_parameters():  # fan-in normal weights (default init zeroes layers)
                    if p.ndim > 1:
                        p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
                    else:
                        p.normal_(1.0 if name.endswith("weight") else 0.0, 0.02, generator=gen)
        if dtype not in self.copies:
            with torch.device(self.device):
                copy = CascadeDiT(self.config)
            copy.load_state_dict(self.fp32.state_dict())
            self.copies[dtype] = copy.to(dtype).eval().requires_grad_(False)
        return self.copies[dtype]

    def seconds(self, fn, repeats: int = 3) -> float:
        fn()
        self.sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    # ---------------------------------------------------------------------------------------------- sections
    @torch.no_grad()
    def precision(self) -> dict:
        x, t = self.call_input()
        ref = self.model(torch.float32)(x, t)[:, :4].float()
        scale = ref.abs().max().item()
        out = {"eps_max_abs_fp32": scale}
        for name in ("fp16", "bf16"):
            model = self.model(DTYPES[name])
            err = (model(x, t)[:, :4].float() - ref).abs().max().item() / scale
            out[f"{name}_rel_error"] = err
            self.say(f"   {name} (attention fp32) vs fp32: max |eps error| / max |eps| = {err:.2e}")
        return out

    @torch.no_grad()
    def attention_kernel(self) -> dict:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        cfg = self.config
        heads, head_dim = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        tokens = cfg.lats_per_vid * (cfg.input_size // cfg.patch_size) ** 2 // 16  # an official 16-window group
        accepted: dict[str, list[str]] = {}
        for name, dtype in DTYPES.items():
            q = torch.randn(16, heads, tokens, head_dim, device=self.device, dtype=dtype)
            accepted[name] = []
            for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                            SDPBackend.MATH):  # fmt: skip
                try:
                    with sdpa_kernel([backend]):
                        F.scaled_dot_product_attention(q, q, q)
                    accepted[name].append(backend.name)
                except RuntimeError:
                    pass
            self.say(f"   q/k/v {name} [16, {heads}, {tokens}, {head_dim}]: {', '.join(accepted[name]) or 'none'}")
        kernels = self.profiled_kernels()
        self.say(f"   kernels in one fp16 forward (attention fp32): {', '.join(kernels) or 'not seen'}")
        return {"backends_accepting": accepted, "kernels_in_fp16_forward": kernels}

    def profiled_kernels(self) -> list[str]:
        """Names of the attention kernels that run in one fp16 forward (CUDA profiler; empty on the CPU)."""
        if self.device.type != "cuda":
            return []
        from torch.profiler import ProfilerActivity, profile

        model = self.model(torch.float16)
        x, t = self.call_input()
        with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(x, t)
            self.sync()
        keys = ("flash", "fmha", "efficient", "cudnn", "attention", "softmax")
        names = {e.key for e in prof.key_averages() if any(k in e.key.lower() for k in keys)}
        return sorted(n[:90] for n in names)

    @torch.no_grad()
    def speed(self) -> dict:
        model = self.model(torch.float16 if self.device.type == "cuda" else torch.float32)
        x, t = self.call_input()
        out = {}
        for layout in LAYOUTS:
            model.set_layout(layout)
            out[layout] = self.seconds(lambda: model(x, t))
            self.say(
                f"   {layout:<9} {out[layout]:8.3f} s per 8x{self.config.input_size}x{self.config.input_size} call"
            )
        model.set_layout(self.config.attn_layout)
        out["official_vs_full"] = out["official"] / out["full"]
        return out

    def refine_2k(self, model=None, executor=None) -> tuple[torch.Tensor, float]:
        """8 frames at 2048x2048 px (64x64 effnet latents -> 256x256 refine latents; smoke: a quarter of it)."""
        side = 16 if self.smoke else 64
        cond = torch.randn(1, 16, 8, side, side, generator=torch.Generator().manual_seed(1)).to(self.device)
        model = model or self.model(torch.float16 if self.device.type == "cuda" else torch.float32)
        start = time.perf_counter()
        out = refine(model, cond, lats_per_vid=self.config.lats_per_vid, input_size=self.config.input_size,
                     options=RefineOptions(steps=2, tile_blend="feather"), seed=0, executor=executor)  # fmt: skip
        self.sync()
        return out, time.perf_counter() - start

    def memory(self) -> dict:
        cuda = self.device.type == "cuda"
        model = self.model(torch.float16 if cuda else torch.float32)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        out, seconds = self.refine_2k()
        peak = (torch.cuda.max_memory_allocated(self.device) - base) / 2**30 if cuda else None
        shown = f"{peak:.2f} GiB" if peak is not None else "(CUDA only)"
        self.say(f"   refine 8 frames x {out.shape[-1] * 8}x{out.shape[-2] * 8} px, 2 steps: {seconds:.1f} s, peak "
                 f"{shown} above the weights ({weights / 2**30:.2f} GiB)")  # fmt: skip
        return {"seconds": seconds, "peak_gib_above_weights": peak, "weights_gib": weights / 2**30}

    def ray(self) -> dict:
        if self.skip_ray:
            self.say("   skipped (--skip-ray)")
            return {"skipped": "--skip-ray"}
        try:
            import ray  # noqa: F401
        except ImportError:
            self.say('   skipped: Ray is not installed (pip install "ray[client]")')
            return {"skipped": "ray not installed"}
        from safetensors.torch import save_file

        from cascadev_core.executor import ModelSpec
        from cascadev_core.ray_executor import RayWorkers

        cuda = self.device.type == "cuda"
        dtype = torch.float16 if cuda else torch.float32
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gpu_check_dit.safetensors"
            state = {k: v.to(dtype).contiguous().cpu() for k, v in self.model(torch.float32).state_dict().items()}
            save_file(state, str(path), metadata={"cascadev_config": self.config.to_json()})
            spec = ModelSpec(str(path), dtype=dtype, layout=self.config.attn_layout)
            local, local_s = self.refine_2k(spec.build(self.device))  # the same file, here
            start = time.perf_counter()
            with RayWorkers(workers=0 if cuda else 2, gpus_per_worker=1.0 if cuda else 0.0) as pool:
                started = time.perf_counter() - start
                executor = pool.executor(spec)
                _, first_s = self.refine_2k(executor=executor)  # includes each worker's model load
                out, seconds = self.refine_2k(executor=executor)
                info = pool.info()
        diff = (out.to(local.device) - local).abs().max().item()
        self.say(f"   {len(info)} worker(s) on {', '.join(w['device'] for w in info)}: cluster start {started:.1f} s, "
                 f"first refine {first_s:.1f} s (model loads), then {seconds:.1f} s against {local_s:.1f} s here; "
                 f"max |difference| to the refine here {diff:.3g} (bitwise equal: {diff == 0})")  # fmt: skip
        return {"workers": len(info), "start_s": started, "first_s": first_s, "seconds": seconds, "local_s": local_s,
                "max_abs_diff_to_local": diff, "equal_to_local": diff == 0}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "output" / "gpu_check", help="folder for the table and JSON")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU: exercises every code path")
    parser.add_argument("--skip-ray", action="store_true", help="skip the Ray workers section")
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check. "
              "Run it on a GPU machine, or with --cpu-smoke to exercise the script on a tiny model.")  # fmt: skip
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    if args.cpu_smoke:
        torch.set_num_threads(1)  # as the CPU workers: the Ray section can then compare bitwise
    config = replace(SMOKE) if args.cpu_smoke else DiTConfig()
    check = Check(device, config, args.cpu_smoke, args.skip_ray)
    start = time.perf_counter()
    check.say(f"gpu_check on {check.result['device']}; DiT {check.result['config']}")
    check.section("precision", check.precision)
    check.section("attention_kernel", check.attention_kernel)
    check.section("speed", check.speed)
    check.section("memory", check.memory)
    check.section("ray", check.ray)
    check.result["seconds"] = round(time.perf_counter() - start, 1)
    check.say(f"\ntotal {check.result['seconds']} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.txt").write_text("\n".join(check.lines) + "\n")
    line = json.dumps(check.result, default=str)
    (args.out / "gpu_check.json").write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
