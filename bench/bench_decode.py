"""Decode benchmark: CascadeV's sliced/tiled decode against ComfyUI's VAE Decode and VAE Decode (Tiled).

Usage::

    python bench/bench_decode.py [--quick] [--vae sd,svd] [--threads N]

ComfyUI is imported in-process (``COMFYUI_PATH`` or ``~/.cache/cascadev-comfyui/0.3.75/ComfyUI``, CPU mode) and two
VAEs of the real architectures are built with random weights through ``comfy.sd.VAE(sd=state_dict)``: a 4-channel
SD VAE (``AutoencoderKL``, a per-frame decoder) and the SVD temporal VAE (``VideoDecoder``, the decoder of the
official CascadeV pipeline, whose temporal layers see the frames of one decoder call together). On the same
latents each VAE decodes with:

* ``VAE Decode (stock)``: the node (``vae.decode(samples)``): frames as batch, in batches of as many frames as
  ComfyUI estimates fit in free memory;
* ``VAE Decode (Tiled) (stock)``: the node (``vae.decode_tiled(...)`` with the tile / overlap / temporal
  arguments ``nodes.VAEDecodeTiled`` passes);
* ``cascadev``: :func:`cascadev_core.vae_decode.decode_latents` as the CascadeV Decode node calls it today
  (``decode(z) = vae.decode(z)``; SVD: the official 4 frames per call, SD: 1), whole frames, then with feathered
  tiles of the stock row's size and overlap (SD also with the official overwrite blending).

SVD only, three rows on what ComfyUI's ``VAE.decode`` does around the decoder: ComfyUI believes it has free memory
for 1.5 frames (it re-batches each 4-frame slice); the decoder raises ``torch.OutOfMemoryError`` on more than
``OOM_FRAMES`` whole frames, once called through ``vae.decode`` as today (ComfyUI catches it and runs its own tiled
fallback), once called directly (``first_stage_model.decode``: the error reaches ``decode_latents``, which retries
with smaller tiles and keeps the 4-frame slices).

Measured per row: wall time; peak memory as the high-water mark of live tensor bytes (a ``TorchDispatchMode``
counting the storages aten ops return, as ``bench_tiled_refine_memory.py``; kernel scratch is invisible) and the
process RSS high-water above the RSS before the call (sampled every 2 ms after ``gc`` + ``malloc_trim``; coarse);
decoder calls and the frames each took; the difference to a reference decode in 8-bit levels (0-255), separately
for pixels within ``BAND`` pixels of the row's own tile borders ("border") and all others ("elsewhere"); and the
seam step: the mean step between neighbouring pixels across the row's tile border lines over that across all
other lines (1 = no visible line; the reference's value at the same lines in brackets). Reference: the untiled
stock decode for the SD VAE, the official 4-frame slices (``cascadev`` whole frames) for SVD.

Random weights: the numbers measure the mechanics (calls, memory, where tiles and slices change the pixels), not
picture quality. ``--quick``: the SD VAE on smaller latents (a smoke run). The output is one table per VAE and, as
its LAST line, one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_COMFYUI = Path.home() / ".cache" / "cascadev-comfyui" / "0.3.75" / "ComfyUI"
BAND = 4  # pixels on each side of a tile border counted as "border"
SCALE = 8  # pixels per latent pixel of both VAEs
OOM_FRAMES = 2  # simulated memory limit of the SVD scenario: whole latent frames per decoder call


@dataclass(frozen=True)
class Case:
    """One VAE and its latents ``[T, 4, h, w]``; ``tile`` / ``overlap`` in latent pixels (x8 in output pixels).

    ``frames_per_call``: the CascadeV rows' slices (SVD: the official 4; SD: 1, a per-frame decoder needs no
    more). ``oom_frames``: run the simulated out-of-memory rows with that limit (whole latent frames per call);
    ``min_tile``: the smallest tile the CascadeV OOM fallback may use there. ``overwrite``: add a row with the
    official overwrite tile blending.
    """

    vae: str
    frames: int
    height: int
    width: int
    tile: int = 8
    overlap: int = 2
    frames_per_call: int = 4
    oom_frames: int | None = None
    min_tile: int = 4
    overwrite: bool = False


FULL = {
    "sd": Case("sd", frames=2, height=12, width=16, frames_per_call=1, overwrite=True),
    "svd": Case("svd", frames=5, height=8, width=12, oom_frames=OOM_FRAMES),
}
QUICK = {"sd": Case("sd", frames=2, height=8, width=12, frames_per_call=1, overwrite=True)}

# keys that make comfy.sd.VAE pick each architecture (its own detection), before the weights are randomised
DETECTION_KEYS = {
    "sd": {
        "decoder.conv_in.weight": (512, 4, 3, 3),
        "decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
        "post_quant_conv.weight": (4, 4, 1, 1),
    },
    "svd": {"decoder.mid.block_1.mix_factor": (1,)},
}


# ---------------------------------------------------------------------------------------------------------------
# ComfyUI, random VAEs
# ---------------------------------------------------------------------------------------------------------------


def import_comfy():
    """Put the ComfyUI tree on ``sys.path`` in CPU mode; returns ``(comfy.sd, nodes)``."""
    root = Path(os.environ.get("COMFYUI_PATH", DEFAULT_COMFYUI))
    if not (root / "comfy" / "sd.py").exists():
        raise SystemExit(f"ComfyUI not found at {root}: set COMFYUI_PATH (or run scripts/comfyui_env.py setup)")
    sys.path.insert(0, str(root))
    argv, sys.argv = sys.argv, [sys.argv[0], "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        logging.disable(logging.WARNING)  # torchaudio / missing-key warnings of the throwaway VAE below
        import comfy.sd

        import nodes
    finally:
        sys.argv = argv
    return comfy.sd, nodes


def random_vae(comfy_sd, kind: str, seed: int = 0):
    """``comfy.sd.VAE(sd=...)`` of ``kind`` ("sd" | "svd") with random weights: a fan-in scaled normal for every
    weight, zero biases, unit norm scales, ``mix_factor`` 0 (temporal and spatial paths mixed half and half)."""
    import torch

    probe = comfy_sd.VAE(sd={k: torch.zeros(s) for k, s in DETECTION_KEYS[kind].items()})  # structure only
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in probe.first_stage_model.state_dict().items():
        if v.ndim > 1:
            v = torch.randn(v.shape, generator=gen) / (v[0].numel() ** 0.5)
        elif k.endswith("bias") or k.endswith("mix_factor"):
            v = torch.zeros(v.shape)
        else:
            v = torch.ones(v.shape)
        sd[k] = v
    del probe
    return comfy_sd.VAE(sd=sd)


# ---------------------------------------------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------------------------------------------


def _live_bytes_mode():
    """A fresh :class:`cascadev_core.live_bytes.LiveTensorBytes` (live CPU tensor bytes and their peak)."""
    from cascadev_core.live_bytes import LiveTensorBytes

    return LiveTensorBytes()


class RssSampler:
    """Peak process RSS above the RSS at start, sampled every ``interval`` seconds by a thread."""

    def __init__(self, interval: float = 0.002):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _release_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Row:
    """One decode: what ran, its cost, and its pixels ``[T, H, W, 3]`` in [0, 1]."""

    name: str
    images: object
    seconds: float
    peak_live: int
    rss_growth: int
    calls: list[tuple[int, int, int]] = field(default_factory=list)  # (frames, h, w) of each successful call
    borders: tuple[list[int], list[int]] | None = None  # interior tile borders (pixel rows, pixel cols)
    diff: dict[str, float] = field(default_factory=dict)


def measure(name: str, run, vae, borders=None) -> Row:
    """Run ``run()`` under the live-bytes mode and the RSS sampler, counting the decoder's calls."""
    model = vae.first_stage_model
    calls: list[tuple[int, int, int]] = []
    wrapped = model.__dict__.get("decode")  # an OOM wrapper set on the instance, if any
    inner = model.decode

    def counted(z, *args, **kwargs):
        out = inner(z, *args, **kwargs)
        calls.append(tuple(int(n) for n in (z.shape[0], z.shape[-2], z.shape[-1])))
        return out

    model.decode = counted
    _release_memory()
    mode = _live_bytes_mode()
    try:
        with RssSampler() as rss, mode:
            t0 = time.perf_counter()
            images = run()
            seconds = time.perf_counter() - t0
    finally:
        if wrapped is None:
            del model.decode
        else:
            model.decode = wrapped
    return Row(name, images.float().cpu(), seconds, mode.peak, rss.growth, calls, borders)


# ---------------------------------------------------------------------------------------------------------------
# the decodes
# ---------------------------------------------------------------------------------------------------------------


def stock_decode(nodes, vae, frames):
    """ComfyUI's ``VAE Decode`` node: ``[T, 4, h, w]`` -> IMAGE ``[T, H, W, 3]``."""
    return nodes.VAEDecode().decode(vae, {"samples": frames})[0]


def stock_tiled(nodes, vae, frames, case: Case):
    """ComfyUI's ``VAE Decode (Tiled)`` node with tile / overlap in pixels and its default temporal arguments."""
    node = nodes.VAEDecodeTiled()
    return node.decode(vae, {"samples": frames}, case.tile * SCALE, case.overlap * SCALE, 64, 8)[0]


def cascadev_decode(decode, frames, case: Case, tiled: bool, blend: str = "feather"):
    """:func:`decode_latents` over one video ``[1, 4, T, h, w]`` -> ``[T, H, W, 3]`` (as the CascadeV Decode node)."""
    from cascadev_core.vae_decode import decode_latents

    out = decode_latents(
        decode,
        frames.movedim(0, 1)[None],
        frames_per_call=case.frames_per_call,
        tile=case.tile if tiled else None,
        overlap=case.overlap,
        blend=blend,
        min_tile=case.min_tile,
    )
    return out[0].movedim(0, -1)


def node_decode_fn(vae):
    """The decoder callable the CascadeV Decode node passes today: ``vae.decode`` (ComfyUI's OOM fallback inside)."""
    return lambda z: vae.decode(z).movedim(-1, 1)


def direct_decode_fn(vae):
    """The decoder itself, in ComfyUI's dtype/device and output range: an OOM reaches ``decode_latents``."""
    import comfy.model_management as mm

    mm.load_models_gpu([vae.patcher])

    def decode(z):
        z = z.to(dtype=vae.vae_dtype, device=vae.device)
        return vae.process_output(vae.first_stage_model.decode(z).float()).to(vae.output_device)

    return decode


@contextlib.contextmanager
def free_memory_for(vae, case: Case, frames: float):
    """Make ComfyUI believe the device has free memory for ``frames`` whole frames by its own estimate
    (``vae.memory_used_decode``): ``VAE.decode`` then splits its input into batches of that many frames."""
    import comfy.model_management as mm

    per_frame = vae.memory_used_decode((1, 4, case.height, case.width), vae.vae_dtype)
    real = mm.get_free_memory
    mm.get_free_memory = lambda *args, **kwargs: int(frames * per_frame)
    try:
        yield
    finally:
        mm.get_free_memory = real


def limit_frames(vae, case: Case, frames: int):
    """Make the decoder raise ``torch.OutOfMemoryError`` on more than ``frames`` whole latent frames at once."""
    import torch

    model = vae.first_stage_model
    inner = model.decode
    budget = frames * case.height * case.width

    def limited(z, *args, **kwargs):
        if z.shape[0] * z.shape[-2] * z.shape[-1] > budget:
            raise torch.OutOfMemoryError(f"simulated: {tuple(z.shape)} over {frames} frames' worth")
        return inner(z, *args, **kwargs)

    model.decode = limited
    return lambda: model.__dict__.pop("decode", None)


# ---------------------------------------------------------------------------------------------------------------
# tile borders and differences
# ---------------------------------------------------------------------------------------------------------------


def cascadev_borders(case: Case) -> tuple[list[int], list[int]]:
    """Interior tile borders (pixels) of ``decode_latents``' plan for ``case``."""
    from cascadev_core.tiling import plan_tiles

    tiles = plan_tiles(case.height, case.width, case.tile, case.tile - case.overlap, "feather")
    rows = {e for t in tiles for e in (t.rows.start, t.rows.stop)} - {0, case.height}
    cols = {e for t in tiles for e in (t.cols.start, t.cols.stop)} - {0, case.width}
    return sorted(r * SCALE for r in rows), sorted(c * SCALE for c in cols)


def shrunk_borders(case: Case, calls: list[tuple[int, int, int]]) -> tuple[list[int], list[int]] | None:
    """Tile borders of a ``decode_latents`` run whose OOM fallback shrank the tile (read off the calls' sizes)."""
    tile = max(max(h, w) for _, h, w in calls)
    if tile >= max(case.height, case.width):
        return None
    overlap = min(case.overlap, tile // 2)
    return cascadev_borders(Case(case.vae, case.frames, case.height, case.width, tile, overlap))


def _comfy_axis_edges(size: int, tile: int, overlap: int) -> set[int]:
    """Tile edges along one axis of ``comfy.utils.tiled_scale_multidim`` (its own position rule)."""
    if size <= tile:
        return set()
    edges = set()
    for it in range(0, size - overlap, tile - overlap):
        pos = max(0, min(size - overlap, it))
        edges |= {pos, pos + min(tile, size - pos)}
    return edges - {0, size}


def stock_tiled_borders(case: Case) -> tuple[list[int], list[int]]:
    """Interior tile borders (pixels) of the three passes of ``VAE.decode_tiled_`` (tiles h x w: 2t x t/2,
    t/2 x 2t, t x t) with the overlap ``VAEDecodeTiled`` keeps (at most a quarter of the tile)."""
    t, o = case.tile, min(case.overlap, case.tile // 4)
    rows, cols = set(), set()
    for th, tw in ((t * 2, t // 2), (t // 2, t * 2), (t, t)):
        rows |= _comfy_axis_edges(case.height, th, o)
        cols |= _comfy_axis_edges(case.width, tw, o)
    return sorted(r * SCALE for r in rows), sorted(c * SCALE for c in cols)


def border_mask(height: int, width: int, borders: tuple[list[int], list[int]]):
    """``[H, W]`` bool: within ``BAND`` pixels of an interior border row or column."""
    import torch

    mask = torch.zeros(height, width, dtype=torch.bool)
    for r in borders[0]:
        mask[max(0, r - BAND) : r + BAND] = True
    for c in borders[1]:
        mask[:, max(0, c - BAND) : c + BAND] = True
    return mask


def differences(row: Row, ref: Row, mask) -> dict[str, float]:
    """Max / mean abs difference to ``ref`` in 8-bit levels, at the borders (``mask``) and elsewhere."""
    d = (row.images - ref.images).abs().mul(255).amax(dim=-1)  # [T, H, W], worst channel
    out = {}
    for zone, m in (("border", mask), ("elsewhere", ~mask)):
        sel = d[:, m]
        if sel.numel():
            out[f"{zone}_max"] = round(sel.max().item(), 3)
            out[f"{zone}_mean"] = round(sel.mean().item(), 4)
    return out


def seam_step(images, borders: tuple[list[int], list[int]]) -> float | None:
    """Mean |step| between neighbouring pixels across the border lines over the mean |step| across all other
    lines (1 = a border line is like any other; a hard seam is > 1). ``images [T, H, W, 3]``."""
    rows, cols = borders
    if not rows and not cols:
        return None
    dy = (images[:, 1:] - images[:, :-1]).abs().mean(dim=(0, 2, 3))  # [H-1]: line between y-1 and y at y-1
    dx = (images[:, :, 1:] - images[:, :, :-1]).abs().mean(dim=(0, 1, 3))  # [W-1]
    on = [dy[r - 1] for r in rows] + [dx[c - 1] for c in cols]
    off_y = [dy[i] for i in range(dy.numel()) if i + 1 not in rows]
    off_x = [dx[i] for i in range(dx.numel()) if i + 1 not in cols]
    return round(float(sum(on) / len(on)) / float(sum(off_y + off_x) / len(off_y + off_x)), 3)


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------


def run_case(comfy_sd, nodes, case: Case) -> tuple[list[Row], str]:
    """Every row of ``case`` on one random VAE and one set of latents; returns the rows and the reference's name."""
    import torch

    vae = random_vae(comfy_sd, case.vae)
    gen = torch.Generator().manual_seed(1)
    frames = torch.randn(case.frames, 4, case.height, case.width, generator=gen)  # frames as batch
    ours_b, stock_b = cascadev_borders(case), stock_tiled_borders(case)
    per_call = f"{case.frames_per_call} frame{'s' if case.frames_per_call > 1 else ''}/call"
    node = node_decode_fn(vae)
    rows = [
        measure("VAE Decode (stock)", lambda: stock_decode(nodes, vae, frames), vae),
        measure("VAE Decode (Tiled) (stock)", lambda: stock_tiled(nodes, vae, frames, case), vae, stock_b),
        measure(f"cascadev, whole frames, {per_call}", lambda: cascadev_decode(node, frames, case, False), vae),
        measure(
            f"cascadev, tiles, feather, {per_call}", lambda: cascadev_decode(node, frames, case, True), vae, ours_b
        ),
    ]
    if case.overwrite:
        rows.append(
            measure(
                f"cascadev, tiles, overwrite, {per_call}",
                lambda: cascadev_decode(node, frames, case, True, "overwrite"),
                vae,
                ours_b,
            )
        )
    ref = rows[0] if case.vae == "sd" else rows[2]  # SVD: the official 4-frame slices
    if case.oom_frames is not None:
        with free_memory_for(vae, case, 1.5):
            rows.append(
                measure(
                    "free memory for 1.5 frames: via vae.decode (node today)",
                    lambda: cascadev_decode(node, frames, case, False),
                    vae,
                )
            )
        restore = limit_frames(vae, case, case.oom_frames)
        try:
            oom = f"OOM above {case.oom_frames} frames:"
            rows.append(
                measure(f"{oom} via vae.decode (node today)", lambda: cascadev_decode(node, frames, case, False), vae)
            )
            direct = direct_decode_fn(vae)
            rows.append(
                measure(f"{oom} via the decoder itself", lambda: cascadev_decode(direct, frames, case, False), vae)
            )
        finally:
            restore()
        rows[-1].borders = shrunk_borders(case, rows[-1].calls)
    h, w = case.height * SCALE, case.width * SCALE
    for r in rows:
        borders = r.borders or ([], [])
        r.diff = differences(r, ref, border_mask(h, w, borders))
        r.diff["seam_step"] = seam_step(r.images, borders)
        r.diff["seam_step_ref"] = seam_step(ref.images, borders)
    return rows, ref.name


def _calls_text(calls: list[tuple[int, int, int]]) -> str:
    """``"6 x 4/2"``: number of decoder calls x the frame counts they took."""
    if not calls:
        return "-"
    sizes = sorted({n for n, _, _ in calls}, reverse=True)
    return f"{len(calls)} x {'/'.join(str(s) for s in sizes)}"


def print_table(case: Case, rows: list[Row], ref_name: str) -> None:
    print(
        f"\n{case.vae.upper()} VAE: latents [{case.frames}, 4, {case.height}, {case.width}] -> "
        f"{case.frames} x {case.height * SCALE}x{case.width * SCALE} px; tiles {case.tile * SCALE} px, overlap "
        f"{case.overlap * SCALE} px; reference = {ref_name}; |d| in 8-bit levels, border = within {BAND} px of the "
        "row's tile borders"
    )
    head = (
        f"{'decode':<56} {'calls x frames':>14} {'wall s':>7} {'peak MiB':>9} {'RSS+ MiB':>9} "
        f"{'border max':>10} {'mean':>7} {'else max':>9} {'mean':>7} {'seam step (ref)':>16}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        d = r.diff
        b_max = f"{d['border_max']:.2f}" if "border_max" in d else "-"
        b_mean = f"{d['border_mean']:.3f}" if "border_mean" in d else "-"
        step = "-" if d["seam_step"] is None else f"{d['seam_step']:.2f} ({d['seam_step_ref']:.2f})"
        print(
            f"{r.name:<56} {_calls_text(r.calls):>14} {r.seconds:7.2f} {r.peak_live / 2**20:9.2f} "
            f"{r.rss_growth / 2**20:9.1f} {b_max:>10} {b_mean:>7} {d['elsewhere_max']:9.2f} "
            f"{d['elsewhere_mean']:7.3f} {step:>16}"
        )


def headline(case: Case, rows: list[Row]) -> dict:
    by = {r.name: r for r in rows}
    out = {
        "latents": [case.frames, 4, case.height, case.width],
        "tile_px": case.tile * SCALE,
        "overlap_px": case.overlap * SCALE,
        "rows": {
            r.name: {
                "s": round(r.seconds, 2),
                "peak_mib": round(r.peak_live / 2**20, 2),
                "rss_mib": round(r.rss_growth / 2**20, 1),
                "calls": len(r.calls),
                "frames_per_call_max": max(n for n, _, _ in r.calls) if r.calls else 0,
                **r.diff,
            }
            for r in rows
        },
    }
    st, ot = by["VAE Decode (Tiled) (stock)"], rows[3]
    out["time_stock_tiled_over_cascadev_tiled"] = round(st.seconds / ot.seconds, 2)
    out["peak_stock_tiled_over_cascadev_tiled"] = round(st.peak_live / ot.peak_live, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: smaller latents, the SD VAE only")
    parser.add_argument("--vae", default=None, help="comma-separated: sd, svd (default: both)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    cases = QUICK if args.quick else FULL
    kinds = args.vae.split(",") if args.vae else list(cases)
    unknown = [k for k in kinds if k not in cases]
    if unknown:
        parser.error(f"--vae: expected one of {sorted(cases)}, got {unknown}")

    import torch

    torch.set_num_threads(args.threads)
    comfy_sd, nodes = import_comfy()
    print(f"decode bench: ComfyUI in-process, CPU, {args.threads} thread(s), random weights, torch {torch.__version__}")
    result = {"bench": "decode", "quick": args.quick, "threads": args.threads}
    with torch.no_grad():
        for kind in kinds:
            case = cases[kind]
            rows, ref_name = run_case(comfy_sd, nodes, case)
            print_table(case, rows, ref_name)
            result[kind] = headline(case, rows)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
