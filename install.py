"""Run by ComfyUI-Manager after it installed requirements.txt. Idempotent; never installs or pins torch/torchvision.

It checks that the pack's dependencies import (requirements.txt, plus torchvision, which comes with ComfyUI's
torch) and creates the model folder the loaders read (``ComfyUI/models/cascadev``), then says which files go there.
"""

import importlib.util
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
REQUIRED = {"einops": "einops", "safetensors": "safetensors", "kornia": "kornia"}  # module -> requirements.txt name


def torchvision_problem() -> str | None:
    """Why ``torchvision.models`` does not import (None when it does): missing, or built for another torch."""
    try:
        import torchvision.models  # noqa: F401
    except Exception as err:  # a torch/torchvision mismatch raises RuntimeError, not ImportError
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def main() -> int:
    missing = [pkg for mod, pkg in REQUIRED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(
            f"[CascadeV] missing packages: {' '.join(missing)}; run: {sys.executable} -m pip install -r "
            f"{PACK / 'requirements.txt'}"
        )
        return 1
    problem = torchvision_problem()
    if problem is not None:
        print(
            f"[CascadeV] torchvision does not import ({problem}). It belongs to ComfyUI's torch install, which this "
            "pack never changes: install the torchvision build that matches your torch as ComfyUI's README says."
        )
        return 1
    comfy_root = PACK.parent.parent
    if (comfy_root / "main.py").exists():
        models = comfy_root / "models" / "cascadev"
        models.mkdir(parents=True, exist_ok=True)
        print(f"[CascadeV] put s1024.effn-f32.pth (or .safetensors) and effnet_encoder.safetensors in {models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
