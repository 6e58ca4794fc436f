"""Does ``torch.compile`` of the DiT blocks pay? Compile time against the time it saves per model call.

Usage::

    python bench/bench_compile_blocks.py [--quick] [--device cpu|cuda] [--modes fp32,fast]

Model: the released width (hidden 1152, 16 heads) with ``--depth`` blocks (default 2: one spatial-window and
one temporal-chunk block of the released schedule, so two compiled graphs) on one window of 8 frames x
``--tile``^2 latent pixels (default 32). Per precision mode: eager time per call and compiled time per call
(interleaved, median of ``--rounds``), the first compiled call (compile time + one call), and the break-even calls
``compile_s / (eager - compiled)``. A refine at the released size makes 8 steps x (windows x tiles) calls, e.g.
8 x 9 = 72 for 16 frames of a 256^2 latent. Outputs are compared with the eager ones (max abs difference).
Prints a table and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
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
from cascadev_core.precision import apply_precision, compile_blocks, resolve_precision  # noqa: E402


def _timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tile 16, 1 round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", default="fp32,fast")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    tile = args.tile or (16 if args.quick else 32)
    rounds = args.rounds or (1 if args.quick else 3)
    device = args.device
    config = DiTConfig(depth=args.depth, input_size=tile)
    torch.manual_seed(0)
    base = CascadeDiT(config).eval().requires_grad_(False)
    x = torch.randn(8, 20, tile, tile, generator=torch.Generator().manual_seed(1)).to(device)
    t = torch.full((8,), 500.0, device=device)
    rows = {}
    for mode in args.modes.split(","):
        precision = resolve_precision(mode, device)
        eager = apply_precision(copy.deepcopy(base).to(device), precision)
        with torch.no_grad():
            want = eager(x, t)
        _timed(lambda m=eager: m(x, t), device)  # warm-up
        compiled = compile_blocks(apply_precision(copy.deepcopy(base).to(device), precision))
        first = _timed(lambda m=compiled: m(x, t), device)
        eager_runs, compiled_runs = [], []
        for _ in range(rounds):  # interleaved, so a change of machine load hits both alike
            eager_runs.append(_timed(lambda m=eager: m(x, t), device))
            compiled_runs.append(_timed(lambda m=compiled: m(x, t), device))
        eager_s, compiled_s = statistics.median(eager_runs), statistics.median(compiled_runs)
        with torch.no_grad():
            diff = (compiled(x, t) - want).abs().max().item()
        compile_s = max(0.0, first - compiled_s)
        saved = eager_s - compiled_s
        rows[mode] = {
            "label": precision.label,
            "eager_s": round(eager_s, 4),
            "compile_s": round(compile_s, 2),
            "compiled_s": round(compiled_s, 4),
            "speedup": round(eager_s / compiled_s, 3),
            "break_even_calls": round(compile_s / saved, 1) if saved > 0 else None,
            "max_abs_diff": float(f"{diff:.3g}"),
        }
        del eager, compiled
        torch._dynamo.reset()
    print(f"torch.compile of the blocks: device {device}, hidden 1152, depth {args.depth}, 8 frames x {tile}^2 latent "
          f"({8 * (tile // 2) ** 2} tokens), median of {rounds}")  # fmt: skip
    print(f"{'mode':<9} {'eager s':>8} {'compile s':>10} {'compiled s':>11} {'speed-up':>9} {'break-even calls':>17} "
          f"{'max|d|':>8}")  # fmt: skip
    for mode, r in rows.items():
        be = "never" if r["break_even_calls"] is None else f"{r['break_even_calls']:.0f}"
        print(f"{mode:<9} {r['eager_s']:8.3f} {r['compile_s']:10.1f} {r['compiled_s']:11.3f} {r['speedup']:8.2f}x "
              f"{be:>17} {r['max_abs_diff']:8.2g}")  # fmt: skip
    print(json.dumps({"bench": "compile_blocks", "device": device, "depth": args.depth, "tile": tile, "modes": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
