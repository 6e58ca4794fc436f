"""Peak memory of the tiled refine loop at two output sizes: the model's working memory must not grow with size.

Usage::

    python bench/bench_tiled_refine_memory.py [--quick] [--device cpu|cuda]

Each size runs in a FRESH subprocess with a small random-weight DiT (hidden 72, depth 7, grid layout; the
numbers do not depend on the weights) and the official sampler options (EulerA, windows of 8 frames, tiles with
the official step round(0.75 * tile), overwrite). Measurements, all in bytes:

* ``peak``: high-water mark of live tensor memory during ``refine``.
  - CUDA: ``torch.cuda.max_memory_allocated`` (allocator truth, includes kernel workspaces).
  - CPU: tracemalloc cannot see torch's allocations, so ``cascadev_core.live_bytes.LiveTensorBytes`` (a
    ``TorchDispatchMode``) counts the storage bytes of every tensor an aten op returns (views and in-place
    results are not double counted; a storage is released when the last tensor seen on it is garbage
    collected). Kernel-internal scratch buffers are invisible to it, so it is complemented by:
* ``rss+``: process RSS high-water (``resource.getrusage``) minus the RSS just before ``refine``, after a warm-up
  run on one tile (CPU only; coarse, page granular, includes allocator caching and the dispatch mode's own
  bookkeeping).
* ``state``: live tensor bytes between two model calls (the full-size latents, noise, conditioning and blend
  buffers the loop must hold; they scale with the video, unavoidably).
* ``work = peak - state``: the transient memory of one model call plus its blending, which tiling keeps constant.

An untiled row (tile = whole latent) at the small size shows what one model call over the full frame costs.
The output is a table, then ratios large/small, and finally ONE JSON line with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------------------------------------------
# worker: one size in this process
# ---------------------------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover - Linux fallback
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(latent: int, tile: int, frames: int, steps: int, device: str) -> dict:
    import torch

    from cascadev_core.config import DiTConfig
    from cascadev_core.dit import CascadeDiT
    from cascadev_core.live_bytes import LiveTensorBytes
    from cascadev_core.refine import refine

    torch.manual_seed(0)
    cfg = DiTConfig(
        hidden_size=72, depth=7, num_heads=4, input_size=tile, attn_layout=[[1, 4], [4, 1], None, [1, 4], [4, 1]]
    )
    model = CascadeDiT(cfg).eval().requires_grad_(False).to(device)
    cond = torch.randn(1, 16, frames, latent // 4, latent // 4, device=device)
    calls = {"n": 0}
    state = {"between": 0}

    mode = LiveTensorBytes() if device == "cpu" else None

    def on_step(done, total):  # between two model calls: only the loop's state is alive
        calls["n"] = done
        if mode is not None:
            state["between"] = max(state["between"], mode.current)
        else:
            state["between"] = max(state["between"], torch.cuda.memory_allocated())

    kwargs = dict(lats_per_vid=8, input_size=tile, steps=steps, seed=0, on_step=on_step)
    if device == "cpu":
        torch.set_num_threads(1)
        with torch.no_grad():  # warm-up on one tile: lazy library / kernel initialisation is not counted in rss+
            refine(model, cond[..., : tile // 4, : tile // 4], lats_per_vid=8, input_size=tile, steps=1, seed=0)
        rss0 = _rss_bytes()
        with torch.no_grad(), mode:
            out = refine(model, cond, **kwargs)
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = mode.peak
        rss_plus = max(0, rss_peak - rss0)
    else:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            out = refine(model, cond, **kwargs)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        state["between"] -= base
        rss_plus = None
    assert out.shape == (1, 4, frames, latent, latent)
    return {
        "latent": latent,
        "tile": tile,
        "frames": frames,
        "model_calls": calls["n"],
        "peak": peak,
        "state": state["between"],
        "work": peak - state["between"],
        "rss_plus": rss_plus,
    }


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------


def _run_fresh(latent: int, tile: int, frames: int, steps: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(latent), str(tile), str(frames), str(steps), "--device", device]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:8.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (latent 32 vs 64, tile 16), 1 step")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument(
        "--worker", nargs=4, type=int, metavar=("LATENT", "TILE", "FRAMES", "STEPS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, device=args.device)))
        return 0

    if args.quick:
        small, large, tile, frames, steps = 32, 64, 16, 8, 1
    else:
        small, large, tile, frames, steps = 64, 128, 32, 12, 2
    rows = [
        ("tiled", _run_fresh(small, tile, frames, steps, args.device)),
        ("tiled", _run_fresh(large, tile, frames, steps, args.device)),
        ("untiled", _run_fresh(small, small, frames, steps, args.device)),
    ]
    meas = "torch.cuda.max_memory_allocated" if args.device != "cpu" else "live aten tensor storages (dispatch mode)"
    print(f"tiled refine memory, device {args.device}, {frames} latent frames, {steps} EulerA step(s); peak = {meas}")
    print(
        f"{'run':<8} {'latent':>7} {'tile':>5} {'calls':>6} {'peak MiB':>9} {'state MiB':>9} {'work MiB':>9} {'rss+ MiB':>9}"
    )
    for name, r in rows:
        print(
            f"{name:<8} {r['latent']:>4}^2 {r['tile']:>5} {r['model_calls']:>6} {_mib(r['peak']):>9} "
            f"{_mib(r['state']):>9} {_mib(r['work']):>9} {_mib(r['rss_plus']):>9}"
        )
    a, b, u = rows[0][1], rows[1][1], rows[2][1]
    pixel_ratio = (large / small) ** 2
    ratios = {
        "pixel_ratio": pixel_ratio,
        "peak_ratio": b["peak"] / a["peak"],
        "work_ratio": b["work"] / a["work"],
        "state_ratio": b["state"] / a["state"],
        "untiled_work_vs_tiled_work": u["work"] / a["work"],
    }
    if a["rss_plus"] and b["rss_plus"]:
        ratios["rss_plus_ratio"] = b["rss_plus"] / a["rss_plus"]
    print(f"ratios {large}^2 / {small}^2 (tile {tile}):")
    for k, v in ratios.items():
        print(f"  {k:<28} {v:6.2f}")
    print(
        "work (one model call + blending) stays flat while the pixels grow; only the full-size latent state "
        "(x, eps, conditioning, blend buffers) scales with the video."
    )
    headline = {
        "bench": "tiled_refine_memory",
        "device": args.device,
        "measure": meas,
        "sizes": [small, large],
        "tile": tile,
        **{k: round(v, 3) for k, v in ratios.items()},
        "peak_mib": [round(a["peak"] / 2**20, 2), round(b["peak"] / 2**20, 2)],
        "work_mib": [round(a["work"] / 2**20, 2), round(b["work"] / 2**20, 2)],
    }
    print(json.dumps(headline))
    return 0


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    sys.exit(main())
