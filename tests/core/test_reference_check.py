"""The reference-check CLI: passes on the shared fixtures, runs from inputs only, writes every output, and fails on
wrong, missing (renamed) expected outputs and missing inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cascadev_core.reference_check import main

REPO = Path(__file__).resolve().parents[2]

# inputs kept when the expected outputs are removed (everything else in these files is an expected output)
INPUTS = {
    "dit_forward.safetensors": lambda k: k.endswith((".x", ".timestep", ".cond_lowres")),
    "refine_loop.safetensors": lambda k: k in ("cond_lowres", "init_noise") or k.startswith("step_noise."),
    "effnet_tiny.safetensors": lambda k: k == "frames",
}
# expected output -> (tolerance, relative to the reference max abs)
TOLERANCE = {"output_latents": (1e-2, False), "timesteps": (0.0, False), "sigmas": (0.0, False)}


pytestmark = pytest.mark.usefixtures("single_thread")


def strip_outputs(src: Path, dst: Path) -> dict[str, torch.Tensor]:
    """Copy ``src`` to ``dst`` without any expected output; returns the removed outputs."""
    dst.mkdir()
    removed: dict[str, torch.Tensor] = {}
    for p in src.iterdir():
        if p.suffix == ".json" or p.name == "dit_tiny.safetensors":
            shutil.copy(p, dst / p.name)
        elif p.name in INPUTS:
            tensors = load_file(str(p))
            keep = {k: v for k, v in tensors.items() if INPUTS[p.name](k)}
            removed |= {k: v for k, v in tensors.items() if k not in keep}
            save_file(keep, str(dst / p.name))
        # any other file (pos_embed_s1024.safetensors, README) holds only expected outputs: left out
    return removed


def test_cli_passes_on_shared_reference(reference_dir, capsys):
    assert main([str(reference_dir), "--no-bar"]) == 0
    out = capsys.readouterr().out
    assert "0 outside tolerance" in out
    for key in ("v1.out.grid_alt_cyclic", "v2.out.grid_official_scaled", "step_eps.0", "output_latents"):
        assert key in out
    assert "effnet_latents" in out and "FAIL" not in out


@pytest.mark.slow
def test_cli_runs_from_inputs_only_and_writes_outputs(reference_dir, tmp_path):
    removed = strip_outputs(reference_dir, tmp_path / "ref")
    assert {"output_latents", "step_eps.0", "v1.out.full", "effnet_latents"} <= set(removed)
    target = tmp_path / "computed.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "cascadev_core.reference_check", str(tmp_path / "ref"), "--write-outputs", str(target)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no reference" in proc.stdout and "0 outside tolerance" in proc.stdout
    assert "max|d|" not in proc.stdout.replace("plan (windows, tiles, weights)     max|d|", "")
    got = load_file(str(target))
    expected = [k for k in removed if not k.startswith("mapper.") and k != "effnet_latents_fp16_official"]
    missing = sorted(set(expected) - set(got))
    assert not missing, missing
    assert {f"step_eps.{i}" for i in range(8)} <= set(got)
    for key in expected:
        tol, rel = TOLERANCE.get(key, (1e-5, key.startswith("step_latents_after.")))
        err = (got[key].double() - removed[key].double()).abs().max().item()
        if rel:
            err /= removed[key].abs().max().item()
        assert err <= tol, (key, err)


def test_cli_fails_on_a_wrong_expected_output(reference_dir, tmp_path):
    folder = tmp_path / "effnet_only"
    folder.mkdir()
    shutil.copy(reference_dir / "effnet_tiny.json", folder)
    tensors = load_file(str(reference_dir / "effnet_tiny.safetensors"))
    tensors["effnet_latents"] = tensors["effnet_latents"] + 1e-3
    save_file(tensors, str(folder / "effnet_tiny.safetensors"))
    assert main([str(folder), "--no-bar"]) == 1


def copy_cases(reference_dir: Path, dst: Path, names: tuple[str, ...], rename: dict[str, str]) -> Path:
    """Copy ``{name}.json`` / ``{name}.safetensors`` of ``names`` into ``dst``, renaming tensor keys per ``rename``."""
    dst.mkdir()
    for name in names:
        shutil.copy(reference_dir / f"{name}.json", dst)
        tensors = load_file(str(reference_dir / f"{name}.safetensors"))
        save_file({rename.get(k, k): v for k, v in tensors.items()}, str(dst / f"{name}.safetensors"))
    return dst


@pytest.mark.parametrize(
    ("names", "group", "key"),
    [
        (("effnet_tiny",), "effnet", "effnet_latents"),
        (("effnet_tiny",), "effnet", "frames_normalized"),
        (("dit_tiny", "dit_forward"), "dit_forward", "v1.out.full"),
    ],
)
def test_cli_fails_on_a_renamed_expected_output(reference_dir, tmp_path, capsys, names, group, key):
    folder = copy_cases(reference_dir, tmp_path / "ref", names, {key: f"{key}.renamed"})
    assert main([str(folder), "--no-bar"]) == 1
    out = capsys.readouterr().out
    assert f"MISSING: {group} {key}: no expected value" in out
    assert "0 outside tolerance, 1 missing" in out


def test_cli_fails_on_a_missing_input(reference_dir, tmp_path, capsys):
    folder = copy_cases(reference_dir, tmp_path / "ref", ("effnet_tiny",), {"frames": "frames.renamed"})
    assert main([str(folder), "--no-bar"]) == 1
    assert "MISSING INPUT: effnet_tiny.json: the effnet forward needs frames" in capsys.readouterr().out


def test_cli_inputs_only_folder_passes_and_writes_outputs(reference_dir, tmp_path, capsys):
    folder = tmp_path / "ref"
    folder.mkdir()
    shutil.copy(reference_dir / "effnet_tiny.json", folder)
    expected = load_file(str(reference_dir / "effnet_tiny.safetensors"))
    save_file({"frames": expected["frames"]}, str(folder / "effnet_tiny.safetensors"))
    target = tmp_path / "computed.safetensors"
    assert main([str(folder), "--no-bar", "--write-outputs", str(target)]) == 0
    out = capsys.readouterr().out
    assert "no expected outputs at all (inputs only)" in out and "0 compared" in out and "0 missing" in out
    got = load_file(str(target))
    assert (got["effnet_latents"] - expected["effnet_latents"]).abs().max().item() <= 1e-5
