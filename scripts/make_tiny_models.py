#!/usr/bin/env python3
"""Write tiny random weights of the real architectures, so the demo and the tests run with no download.

    python scripts/make_tiny_models.py MODELS_DIR

writes, under a ComfyUI ``models/`` folder:

* ``cascadev/tiny_cascadev_dit.safetensors``: a CascadeV DiT with the official structure and key names but
  hidden 72, depth 4, 4 heads, tile 16 (its config is stored in the file's metadata, as the converter does);
* ``cascadev/tiny_effnet_encoder.safetensors``: the full-size EfficientNetV2-S effnet encoder (20 M values,
  random, float16), the architecture of the released ``effnet_encoder.safetensors``;
* ``vae/tiny_taesd.safetensors``: a TAESD (SD-latent tiny autoencoder) with random weights;
* ``diffusion_models/tiny_wan21_i2v.safetensors``: a Wan 2.1 image-to-video DiT (width 128, one block);
* ``vae/tiny_wan21_vae.safetensors``: a Wan 2.1 VAE of base width 8 (stock VAELoader reads the width from it;
  ComfyUI 0.3.52 does not, so for it the released width 96);

the last three built by ComfyUI's own classes in a subprocess, so the key names are ComfyUI's (needs
``COMFYUI_PATH`` or the cached tree).

Real weights go in the same folders: ``models/cascadev/s1024.effn-f32.pth`` (or its ``.safetensors``
conversion), ``models/cascadev/effnet_encoder.safetensors`` and a 4-channel SD VAE (the SVD temporal VAE of the
official pipeline) in ``models/vae/``.
"""

from __future__ import annotations

import argparse
import json
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
TINY_WAN = "tiny_wan21_i2v.safetensors"
TINY_WAN_VAE = "tiny_wan21_vae.safetensors"

#: real model file names in the shipped workflows -> the tiny stand-ins written here
TINY_SUBSTITUTES = {
    "s1024.effn-f32.pth": TINY_DIT,
    "effnet_encoder.safetensors": TINY_EFFNET,
    "vae-ft-mse-840000-ema-pruned.safetensors": TINY_VAE,
    "wan2.1_i2v_480p_14B_fp16.safetensors": TINY_WAN,
    "wan_2.1_vae.safetensors": TINY_WAN_VAE,
}

TINY_DIT_CONFIG = dict(hidden_size=72, depth=4, num_heads=4, input_size=16, attn_layout="official")

_COMFY_MODELS_SCRIPT = r"""
import sys, torch
comfy_dir, targets = sys.argv[1], list(zip(sys.argv[2::2], sys.argv[3::2]))
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
from safetensors.torch import save_file
import comfy.ldm.wan.model, comfy.ldm.wan.vae, comfy.ops, comfy.taesd.taesd as taesd

def randomised(model, seed):
    # comfy's ops skip weight init: give every weight a fan-in scaled normal init, biases zero, norms one
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if v.ndim > 1:
            v = torch.randn(v.shape, generator=gen) / (v[0].numel() ** 0.5)
        elif k.endswith("bias"):
            v = torch.zeros(v.shape)
        else:
            v = torch.ones(v.shape)
        sd[k] = v.contiguous()
    return sd

import inspect
import comfy.sd
# ComfyUI >= 0.3.6x reads the Wan 2.1 VAE width from the file; 0.3.52 builds the released width (96) whatever
# the file holds, so there the stand-in has that width (random weights, stored as fp16 to halve the file).
WAN_VAE_DIM = 8 if "decoder.head.0.gamma" in inspect.getsource(comfy.sd.VAE.__init__) else 96
models = {
    "TAESD": lambda: taesd.TAESD(),
    "WAN21_I2V": lambda: comfy.ldm.wan.model.WanModel(
        model_type="i2v", in_dim=36, dim=128, ffn_dim=256, num_heads=1, num_layers=1, out_dim=16,
        operations=comfy.ops.disable_weight_init),
    "WAN21_VAE": lambda: comfy.ldm.wan.vae.WanVAE(
        dim=WAN_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]),
}
for i, (name, path) in enumerate(targets):
    sd = randomised(models[name](), i)
    if name == "WAN21_VAE" and WAN_VAE_DIM != 8:
        sd = {k: v.half() for k, v in sd.items()}
    save_file(sd, path)
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


def write_comfy_models(comfyui: Path, targets: dict[str, Path]) -> None:
    """Build ComfyUI-side models (``TAESD``, ``WAN21_I2V``, ``WAN21_VAE``) with ComfyUI's own classes in a
    subprocess and save random weights: ``targets`` maps a model name to its output file."""
    pairs = [str(x) for name, path in targets.items() for x in (name, path)]
    subprocess.run([sys.executable, "-c", _COMFY_MODELS_SCRIPT, str(comfyui), *pairs], check=True)


def write_tiny_models(models_dir: Path, comfyui: Path | None = None) -> dict[str, Path]:
    """Write every tiny model under ``models_dir`` (a ComfyUI ``models/`` folder); skip files already there."""
    if comfyui is None:
        import comfyui_env

        comfyui = comfyui_env.comfyui_path(Path(sys.executable))
    out = {
        "dit": models_dir / "cascadev" / TINY_DIT,
        "effnet": models_dir / "cascadev" / TINY_EFFNET,
        "vae": models_dir / "vae" / TINY_VAE,
        "wan": models_dir / "diffusion_models" / TINY_WAN,
        "wan_vae": models_dir / "vae" / TINY_WAN_VAE,
    }
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    if not out["dit"].exists():
        write_tiny_dit(out["dit"])
    if not out["effnet"].exists():
        write_tiny_effnet(out["effnet"])
    comfy_side = {"TAESD": out["vae"], "WAN21_I2V": out["wan"], "WAN21_VAE": out["wan_vae"]}
    missing = {name: path for name, path in comfy_side.items() if not path.exists()}
    if missing:
        write_comfy_models(comfyui, missing)
    return out


def with_tiny_models(prompt: dict) -> dict:
    """A copy of an API-format graph whose model file names are replaced by the tiny stand-ins."""
    out = json.loads(json.dumps(prompt))
    for node in out.values():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and value in TINY_SUBSTITUTES:
                node["inputs"][name] = TINY_SUBSTITUTES[value]
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
