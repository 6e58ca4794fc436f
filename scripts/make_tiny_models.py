#!/usr/bin/env python3
"""Write tiny random weights of the real architectures, so the demo and the tests run with no download.

    python scripts/make_tiny_models.py MODELS_DIR

writes, under a ComfyUI ``models/`` folder:

* ``cascadev/tiny_cascadev_dit.safetensors``: a CascadeV DiT with the official structure and key names but
  hidden 72, depth 4, 4 heads, tile 16 (its config is stored in the file's metadata, as the converter does);
* ``cascadev/tiny_effnet_encoder.safetensors``: the full-size EfficientNetV2-S effnet encoder (20 M values,
  random, float16), the architecture of the released ``effnet_encoder.safetensors``;
* ``vae/tiny_taesd.safetensors``: a TAESD (SD-latent tiny autoencoder) with random weights, built by ComfyUI's own
  ``comfy.taesd`` class in a subprocess so the key names are ComfyUI's (needs ``COMFYUI_PATH`` or the cached tree).

Real weights go in the same folders: ``models/cascadev/s1024.effn-f32.pth`` (or its ``.safetensors``
conversion), ``models/cascadev/effnet_encoder.safetensors`` and a 4-channel SD VAE (the SVD temporal VAE of the
official pipeline) in ``models/vae/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cascadev_core.checkpoint import METADATA_CONFIG_KEY  # noqa: E402
from cascadev_core.config import DiTConfig  # noqa: E402
from cascadev_core.dit import CascadeDiT  # noqa: E402
from cascadev_core.effnet import EfficientNetEncoder  # noqa: E402

TINY_DIT = "tiny_cascadev_dit.safetensors"
TINY_EFFNET = "tiny_effnet_encoder.safetensors"
TINY_VAE = "tiny_taesd.safetensors"

TINY_DIT_CONFIG = dict(hidden_size=72, depth=4, num_heads=4, input_size=16, attn_layout="official")

_TAESD_SCRIPT = r"""
import sys, torch
comfy_dir, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
from safetensors.torch import save_file
import comfy.taesd.taesd as taesd
torch.manual_seed(0)
model = taesd.TAESD()
sd = {}
for k, v in model.state_dict().items():
    if v.ndim > 1:  # comfy's ops skip weight init: give every conv a fan-in scaled normal init
        v = torch.randn(v.shape) / (v[0].numel() ** 0.5)
    elif k.endswith("bias"):
        v = torch.zeros(v.shape)
    sd[k] = v.contiguous()
save_file(sd, out)
"""


def random_like_init(module: torch.nn.Module, seed: int) -> None:
    """Deterministic random init: fan-in scaled normal weights, small biases (the default init drifts by torch)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / (p[0].numel() ** 0.5))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02 + (1.0 if name.endswith("weight") else 0.0))


def write_tiny_dit(path: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    config = DiTConfig(**TINY_DIT_CONFIG)
    model = CascadeDiT(config)
    random_like_init(model, seed)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={"format": "pt", METADATA_CONFIG_KEY: config.to_json()})
    return path


def write_tiny_effnet(path: Path, seed: int = 1) -> Path:
    from safetensors.torch import save_file

    model = EfficientNetEncoder()
    random_like_init(model, seed)
    save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    return path


def write_tiny_taesd(path: Path, comfyui: Path) -> Path:
    subprocess.run([sys.executable, "-c", _TAESD_SCRIPT, str(comfyui), str(path)], check=True)
    return path


def write_tiny_models(models_dir: Path, comfyui: Path | None = None) -> dict[str, Path]:
    """Write every tiny model under ``models_dir`` (a ComfyUI ``models/`` folder); skip files already there."""
    if comfyui is None:
        import comfyui_env

        comfyui = comfyui_env.comfyui_path(Path(sys.executable))
    out = {
        "dit": models_dir / "cascadev" / TINY_DIT,
        "effnet": models_dir / "cascadev" / TINY_EFFNET,
        "vae": models_dir / "vae" / TINY_VAE,
    }
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    if not out["dit"].exists():
        write_tiny_dit(out["dit"])
    if not out["effnet"].exists():
        write_tiny_effnet(out["effnet"])
    if not out["vae"].exists():
        write_tiny_taesd(out["vae"], comfyui)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models_dir", type=Path, help="a ComfyUI models/ folder")
    parser.add_argument("--comfyui", type=Path, default=None, help="ComfyUI tree (default: COMFYUI_PATH or cache)")
    args = parser.parse_args()
    for name, path in write_tiny_models(args.models_dir, args.comfyui).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
