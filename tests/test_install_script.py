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
