"""Run by ComfyUI-Manager after it installed requirements.txt. Idempotent; never touches torch.

It checks that the pack's dependencies import and creates the model folder the loaders read
(``ComfyUI/models/cascadev``), then says which files go there.
"""

import importlib.util
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
REQUIRED = {"einops": "einops", "safetensors": "safetensors", "kornia": "kornia", "cv2": "opencv-python"}


def main() -> int:
    missing = [pkg for mod, pkg in REQUIRED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(
            f"[CascadeV] missing packages: {' '.join(missing)}; run: {sys.executable} -m pip install -r "
            f"{PACK / 'requirements.txt'}"
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
