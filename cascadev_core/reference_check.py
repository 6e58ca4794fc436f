"""Re-run the official reference fixtures from their inputs and compare: ``python -m cascadev_core.reference_check``.

Usage::

    python -m cascadev_core.reference_check DIR [--write-outputs FILE] [--device cpu] [--effnet-fp16]

``DIR`` is a folder in the format of ``shared/reference/cascadev`` (any sizes, seeds and layouts). The json files
are classified by content:

* model description (``"constructor"`` + ``"state_dict"``, e.g. ``dit_tiny.json``): the DiT is rebuilt from it and
  loaded from the ``.safetensors`` of the same name;
* DiT forward cases (``"cases"``, e.g. ``dit_forward.json``): every case x every layout it lists, from ``{case}.x``
  and ``{case}.timestep``; outputs ``{case}.out.{layout}`` (and ``{case}.pos_embed`` when listed);
* refine loop (``"scheduler"`` + ``"config"``, e.g. ``refine_loop.json``): the official sampler with the recorded
  ``step_noise.i`` replayed; outputs ``cond_upsampled_scaled``, ``step_eps.i``, ``step_latents_after.i``,
  ``output_latents``, ``timesteps``, ``sigmas``; the window/tile plan is checked against the json;
* effnet (``"weights_recipe"``, e.g. ``effnet_tiny.json``): weights regenerated from the recipe (sha256-checked),
  outputs ``frames_normalized``, ``effnet_latents`` (and ``effnet_latents_fp16_official`` with ``--effnet-fp16``,
  slow on CPU).

Inputs are read from the safetensors files and every computed output is compared with the expected output of the
same key (README section 6 tolerances: forward, step_eps and effnet ``atol 1e-5``; per-step latents ``1e-5`` of
their max abs; output_latents ``atol 1e-2``). An expected output that is not there is a failure ("missing"): a
renamed key must not silently check nothing (only ``step_eps.i`` past the first step are optional: the official
fixture records ``step_eps.0``). The one exception is a folder with no expected outputs at all (inputs only):
everything is computed and nothing compared. A case whose inputs are missing is always a failure.
``--write-outputs FILE`` saves every computed output under the reference key names into one safetensors file.

Exit code 1 when an expected output is outside tolerance or missing, or inputs are missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

TOL_ATOL = 1e-5
TOL_OUTPUT_LATENTS = 1e-2
TOL_STEP_REL = 1e-5
TOL_FP16_EFFNET = 1e-5


@dataclass
class CaseResult:
    """One computed output: its key, max abs error against the reference (None if absent), tolerance, verdict.

    ``required``: the folder must hold this expected output unless it holds none at all (see :attr:`Report.missing`);
    False for outputs the official fixtures record only in part (``step_eps.i`` past the first step).
    """

    group: str
    key: str
    error: float | None
    tol: float
    relative: bool = False
    required: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None or self.error <= self.tol

    def line(self) -> str:
        if self.error is None:
            return f"  {self.group:<12} {self.key:<34} computed (no reference)"
        kind = "rel.max" if self.relative else "max|d|"
        verdict = "ok" if self.ok else "FAIL"
        return f"  {self.group:<12} {self.key:<34} {kind} {self.error:.3e}  tol {self.tol:.0e}  {verdict}"


@dataclass
class Report:
    """Every :class:`CaseResult`, the computed outputs by key, notes, and the inputs that were not found."""

    results: list[CaseResult] = field(default_factory=list)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing_inputs: list[str] = field(default_factory=list)
    references_found: int = 0

    @property
    def inputs_only(self) -> bool:
        """No computed output found an expected value: the folder holds inputs only, nothing can be compared."""
        return self.references_found == 0

    @property
    def missing(self) -> list[CaseResult]:
        """Required outputs with no expected value in a folder that has expected values (empty when inputs only)."""
        return [] if self.inputs_only else [r for r in self.results if r.required and r.error is None]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.missing and not self.missing_inputs


class _Bar:
    """A tiny stderr progress bar (``on_step(done, total)``), drawn only when stderr is a terminal."""

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * done / max(total, 1))
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r  {self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------------
# folder reading
# ---------------------------------------------------------------------------------------------------------------


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        return {}
    from safetensors.torch import load_file

    return load_file(str(path))


def _classify(folder: Path) -> dict[str, list[tuple[Path, dict]]]:
    kinds: dict[str, list[tuple[Path, dict]]] = {"model": [], "dit_forward": [], "refine": [], "effnet": []}
    for p in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(doc, dict):
            continue
        if "weights_recipe" in doc:
            kinds["effnet"].append((p, doc))
        elif "constructor" in doc and "state_dict" in doc:
            kinds["model"].append((p, doc))
        elif "cases" in doc:
            kinds["dit_forward"].append((p, doc))
        elif "scheduler" in doc and "config" in doc:
            kinds["refine"].append((p, doc))
    return kinds


def _tensor_file(json_path: Path, doc: dict) -> Path:
    return json_path.parent / doc.get("file", json_path.with_suffix(".safetensors").name)


def _strip(key: str) -> str:
    return re.sub(r"\s*\(.*\)\s*$", "", key).strip()


def _cfg_get(cfg: dict, *names: str, default=None):
    """Value of the first key of ``cfg`` whose note-stripped name starts with one of ``names``."""
    for name in names:
        for k, v in cfg.items():
            if _strip(k).startswith(name):
                return v
    return default


def _compare(
    report: Report,
    group: str,
    key: str,
    got: torch.Tensor,
    ref: dict,
    tol: float,
    rel=False,
    store=True,
    required=True,
) -> None:
    if store:
        report.outputs[key] = got.detach().cpu().contiguous()
    exp = ref.get(key)
    err = None
    if exp is not None:
        report.references_found += 1
        if tuple(exp.shape) != tuple(got.shape):
            err = float("inf")
            report.notes.append(f"{key}: shape {tuple(got.shape)} vs reference {tuple(exp.shape)}")
        else:
            diff = (got.detach().cpu().double() - exp.double()).abs().max().item()
            err = diff / max(exp.abs().max().item(), 1e-30) if rel else diff
    report.results.append(CaseResult(group, key, err, tol, rel, required))


# ---------------------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------------------


class _ModelSource:
    """The DiT described by a model json, loaded once and re-configured per layout / tile size."""

    def __init__(self, json_path: Path, doc: dict, device: str):
        from .checkpoint import load_dit
        from .config import DiTConfig

        self.doc, self.device = doc, device
        self.layouts = doc["constructor"].get("attn_strides")
        first = next(iter(self.layouts)) if isinstance(self.layouts, dict) else None
        self.config = DiTConfig.from_reference_json(doc, layout_name=first)
        weights = json_path.with_suffix(".safetensors")
        self.model, _ = load_dit(weights, config=self.config, device=device, dtype=torch.float32)

    def with_layout(self, layout) -> torch.nn.Module:
        if isinstance(layout, str) and isinstance(self.layouts, dict):
            layout = self.layouts[layout]
        self.model.set_layout(layout)
        return self.model


def check_dit_forward(report: Report, path: Path, doc: dict, src: _ModelSource, log: Callable) -> None:
    ref = _load_tensors(_tensor_file(path, doc))
    listed = doc.get("tensors", {})
    for case, info in doc["cases"].items():
        x, t = ref.get(f"{case}.x"), ref.get(f"{case}.timestep")
        if x is None or t is None:
            report.missing_inputs.append(f"{path.name}: case {case} needs {case}.x and {case}.timestep; not run")
            continue
        frames = int(info.get("frames_per_video", src.config.lats_per_vid))
        for layout in info.get("layouts_run", [next(iter(src.layouts))]):
            model = src.with_layout(layout)
            with torch.no_grad():
                out = model(x.to(src.device), t.to(src.device), frames_per_video=frames)
            _compare(report, "dit_forward", f"{case}.out.{layout}", out, ref, TOL_ATOL)
            log(report.results[-1].line())
        if f"{case}.pos_embed" in listed or f"{case}.pos_embed" in ref:
            p = src.config.patch_size
            pe = src.model.pos_embed(frames, x.shape[-2] // p, x.shape[-1] // p, torch.device(src.device))
            _compare(report, "dit_forward", f"{case}.pos_embed", pe, ref, TOL_ATOL)
            log(report.results[-1].line())


def check_refine(report: Report, path: Path, doc: dict, src: _ModelSource, log: Callable, bar: bool) -> None:
    from .conditioning import conditioning_frames, from_frames
    from .refine import RefineOptions, refine
    from .schedulers import official_schedule
    from .tiling import plan_tiles, plan_windows

    ref = _load_tensors(_tensor_file(path, doc))
    cfg, sched = doc["config"], doc["scheduler"]
    if "EulerAncestral" not in sched.get("class", "EulerAncestral"):
        raise ValueError(f"{path.name}: only the EulerAncestral scheduler is supported, got {sched.get('class')}")
    want = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}
    got_cfg = sched.get("config", {})
    bad = {k: got_cfg[k] for k in want if k in got_cfg and got_cfg[k] != want[k]}
    if bad:
        raise ValueError(f"{path.name}: unsupported scheduler config {bad}")
    steps = int(sched["num_inference_steps"])
    window = int(_cfg_get(cfg, "lats_per_vid", default=src.config.lats_per_vid))
    stride = int(_cfg_get(cfg, "temporal window stride", default=window // 2))
    tile = int(_cfg_get(cfg, "spatial tile", "input_size", default=src.config.input_size))
    step = int(_cfg_get(cfg, "tile step", default=round(0.75 * tile)))
    sr = int(_cfg_get(cfg, "sr_scale", default=4))
    scale_factor = float(_cfg_get(cfg, "scale_factor", default=src.config.scale_factor))
    has_layout = any(_strip(k) == "attn_strides" for k in cfg)
    layout = _cfg_get(cfg, "attn_strides") if has_layout else next(iter(src.layouts or [None]), None)

    cond = ref.get("cond_lowres")
    noise0 = ref.get("init_noise")
    if cond is None or noise0 is None:
        report.missing_inputs.append(f"{path.name}: the refine needs cond_lowres and init_noise; not run")
        return
    b, _, t, h, w = cond.shape
    if b != 1:
        raise ValueError(f"{path.name}: cond_lowres has batch {b}; the recorded layout [T, 4, H, W] needs 1")

    # plan recorded in the json
    wins = plan_windows(t, window, stride, "crossfade")
    tiles = plan_tiles(h * sr, w * sr, tile, step)
    plan_ok = True
    if "windows_visited" in doc:
        plan_ok &= [s.start for s in wins] == doc["windows_visited"]
    if "tiles" in doc:
        plan_ok &= sorted({tl.rows.start for tl in tiles}) == doc["tiles"].get("row_starts")
        plan_ok &= sorted({tl.cols.start for tl in tiles}) == doc["tiles"].get("col_starts")
    for rec, win in zip(doc.get("window_blending", []), wins):
        w_ref = rec.get("new_window_weights")
        w_got = "overwrite" if win.weight is None else [float(v) for v in win.weight]
        plan_ok &= w_got == w_ref
    report.results.append(CaseResult("refine", "plan (windows, tiles, weights)", 0.0 if plan_ok else 1.0, 0.0))
    log(report.results[-1].line())

    sch = official_schedule(steps)
    _compare(report, "refine", "timesteps", sch.timesteps, ref, 0.0)
    log(report.results[-1].line())
    _compare(report, "refine", "sigmas", sch.sigmas, ref, 0.0)
    log(report.results[-1].line())
    _compare(report, "refine", "cond_upsampled_scaled", conditioning_frames(cond, sr, scale_factor), ref, TOL_ATOL)
    log(report.results[-1].line())

    noises = []
    for i in range(steps):
        n = ref.get(f"step_noise.{i}")
        if n is None:
            raise ValueError(f"{path.name}: input step_noise.{i} missing (needed to replay the sampler)")
        noises.append(from_frames(n, 1))
    model = src.with_layout(layout)
    steps_out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def on_step_cb(info: dict) -> None:
        steps_out[info["i"]] = (info["eps"].cpu(), info["x"].cpu())

    opts = RefineOptions(steps=steps, window=window, window_stride=stride, tile=tile, tile_overlap=tile - step)
    out = refine(
        model,
        cond.to(src.device),
        lats_per_vid=window,
        input_size=tile,
        options=opts,
        noise=from_frames(noise0, 1).to(src.device),
        step_noises=noises,
        scale_factor=scale_factor,
        sr_scale=sr,
        callback=on_step_cb,
        on_step=_Bar("refine", bar),
    )
    listed = doc.get("tensors", {})
    for i in range(steps):
        eps, x = steps_out[i]
        recorded = i == 0 or f"step_eps.{i}" in listed  # the official fixture records the first step's eps only
        _compare(report, "refine", f"step_eps.{i}", eps, ref, TOL_ATOL, required=recorded)
        if recorded or f"step_eps.{i}" in ref:
            log(report.results[-1].line())
        _compare(report, "refine", f"step_latents_after.{i}", x, ref, TOL_STEP_REL, rel=True)
        log(report.results[-1].line())
    _compare(report, "refine", "output_latents", out, ref, TOL_OUTPUT_LATENTS)
    log(report.results[-1].line())


def check_effnet(report: Report, path: Path, doc: dict, device: str, log: Callable, fp16: bool) -> None:
    from . import effnet
    from .reference_recipes import recipe_encoder

    ref = _load_tensors(_tensor_file(path, doc))
    encoder = recipe_encoder(path).to(device)
    for key in [k for k in ref if k.startswith("mapper.")]:
        _compare(report, "effnet", key, encoder.state_dict()[key].cpu(), ref, 0.0, store=False)
        log(report.results[-1].line())
    frames = ref.get("frames")
    if frames is None:
        report.missing_inputs.append(f"{path.name}: the effnet forward needs frames; not run")
        return
    _compare(report, "effnet", "frames_normalized", effnet.preprocess_frames(frames), ref, TOL_ATOL)
    log(report.results[-1].line())
    lat = effnet.encode_video(encoder, frames.to(device), on_step=_Bar("effnet", False))
    _compare(report, "effnet", "effnet_latents", lat, ref, TOL_ATOL)
    log(report.results[-1].line())
    if fp16:
        lat16 = effnet.encode_video(encoder.half(), frames.to(device))
        _compare(report, "effnet", "effnet_latents_fp16_official", lat16, ref, TOL_FP16_EFFNET)
        log(report.results[-1].line())


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------


def run(
    folder: str | Path,
    write_outputs: str | Path | None = None,
    device: str = "cpu",
    effnet_fp16: bool = False,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
) -> Report:
    """Run every case found in ``folder``; returns the :class:`Report` (and writes the outputs if asked)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder not found: {folder}")
    kinds = _classify(folder)
    report = Report()
    needs_model = kinds["dit_forward"] or kinds["refine"]
    if needs_model and len(kinds["model"]) != 1:
        found = [p.name for p, _ in kinds["model"]]
        raise ValueError(f"{folder}: expected exactly one DiT description json (constructor + state_dict), got {found}")
    src = _ModelSource(*kinds["model"][0], device) if needs_model else None
    for path, doc in kinds["dit_forward"]:
        log(f"{path.name}:")
        check_dit_forward(report, path, doc, src, log)
    for path, doc in kinds["refine"]:
        log(f"{path.name}:")
        check_refine(report, path, doc, src, log, progress_bar)
    for path, doc in kinds["effnet"]:
        log(f"{path.name}:")
        check_effnet(report, path, doc, device, log, effnet_fp16)
    for note in report.notes:
        log(f"note: {note}")
    if write_outputs is not None:
        from safetensors.torch import save_file

        Path(write_outputs).parent.mkdir(parents=True, exist_ok=True)
        save_file(report.outputs, str(write_outputs))
        log(f"wrote {len(report.outputs)} outputs to {write_outputs}")
    for text in report.missing_inputs:
        log(f"MISSING INPUT: {text}")
    for r in report.missing:
        log(f"MISSING: {r.group} {r.key}: no expected value under this key (renamed or not recorded?)")
    if report.inputs_only:
        log(f"{folder}: no expected outputs at all (inputs only): computed, nothing compared")
    compared = [r for r in report.results if r.error is not None]
    failed = [r for r in compared if not r.ok]
    log(
        f"{len(report.results)} outputs computed, {len(compared)} compared, {len(failed)} outside tolerance, "
        f"{len(report.missing)} missing"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascadev_core.reference_check", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="reference folder (format of shared/reference/cascadev)")
    parser.add_argument("--write-outputs", metavar="FILE", help="save every computed output into this safetensors")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; the fixtures are CPU float32)")
    parser.add_argument("--effnet-fp16", action="store_true", help="also run the fp16 effnet (slow on CPU)")
    parser.add_argument("--no-bar", action="store_true", help="no stderr progress bar")
    args = parser.parse_args(argv)
    report = run(args.folder, args.write_outputs, args.device, args.effnet_fp16, progress_bar=not args.no_bar)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
