"""install.py, as ComfyUI-Manager runs it: from the pack folder inside ComfyUI/custom_nodes, twice."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_install_creates_the_model_folder_and_is_idempotent(tmp_path):
    comfy = tmp_path / "ComfyUI"
    pack = comfy / "custom_nodes" / "ComfyUI-CascadeV"
    pack.mkdir(parents=True)
    (comfy / "main.py").write_text("")
    shutil.copy(REPO / "install.py", pack / "install.py")
    shutil.copy(REPO / "requirements.txt", pack / "requirements.txt")
    for _ in range(2):
        out = subprocess.run([sys.executable, "install.py"], cwd=pack, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert (comfy / "models" / "cascadev").is_dir()
        assert "s1024.effn-f32.pth" in out.stdout
    assert sorted(p.name for p in comfy.iterdir()) == ["custom_nodes", "main.py", "models"]


def test_required_modules_match_requirements_txt():
    """install.py checks exactly what requirements.txt installs (and never torch / torchvision, which it only
    imports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cascadev_install", REPO / "install.py")
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    listed = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines() if line.strip()]
    assert sorted(install.REQUIRED.values()) == sorted(listed)
    assert not any(name.startswith(("torch", "opencv")) for name in listed)


def test_a_broken_torchvision_is_reported_not_installed(tmp_path):
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    shutil.copy(REPO / "install.py", tmp_path / "install.py")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "install.py"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "torchvision does not import (RuntimeError: operator torchvision::nms does not exist)" in out.stdout
    assert "pip install" not in out.stdout
