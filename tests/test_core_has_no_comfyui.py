"""cascadev_core is a plain torch library: every module imports with no ComfyUI anywhere on the path."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import importlib, pkgutil, sys
sys.path = [p for p in sys.path if 'comfy' not in p.lower()]
import cascadev_core
names = [m.name for m in pkgutil.walk_packages(cascadev_core.__path__, 'cascadev_core.')]
for name in names:
    importlib.import_module(name)
comfy = sorted(m for m in sys.modules if m.split('.')[0] in
               {'comfy', 'comfy_api', 'comfy_execution', 'folder_paths', 'server', 'nodes', 'node_helpers'})
print(len(names), comfy)
assert not comfy, comfy
"""


def test_every_core_module_imports_without_comfyui():
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    count = int(out.stdout.split()[0])
    assert count >= 10, f"only {count} core modules found: {out.stdout}"
