"""Convert a released CascadeV DiT ``.pth`` to ``.safetensors``.

    python -m cascadev_core.convert_checkpoint IN.pth OUT.safetensors [--num-heads N] [--layout NAME]
        [--input-size N] [--lats-per-vid N] [--pe-interpolation X]

Removes the ``state_dict`` wrapper, drops ``pos_embed`` keys, keeps the dtype (float16 for the released
file), checks every key and shape against the inferred model and stores the config as JSON in the
safetensors metadata (key ``cascadev_config``), so :func:`cascadev_core.checkpoint.load_dit` needs no sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .attention_layouts import LayoutSpec
from .checkpoint import METADATA_CONFIG_KEY, build_model, check_state_dict, infer_config, load_state_dict_file


def convert(
    src: str | Path,
    dst: str | Path,
    num_heads: int | None = None,
    layout: LayoutSpec | None = None,
    **config_fields: Any,
) -> dict:
    """Convert ``src`` (torch checkpoint) to ``dst`` (safetensors).

    Args:
        src: input ``.pth``.
        dst: output ``.safetensors`` (must differ from src).
        num_heads: head count for models whose width is not 1152.
        layout: attention layout preset / JSON list stored in the config (default: released schedule).
        **config_fields: other DiTConfig fields that are not weight shapes (input_size, lats_per_vid,
            pe_interpolation); default: the released values.

    Returns:
        summary dict (tensors, parameters, dtypes, config).
    """
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError("output path equals input path")
    state, metadata = load_state_dict_file(src)
    overrides = {k: v for k, v in config_fields.items() if v is not None}
    if layout is not None:
        overrides["attn_layout"] = layout
    config = infer_config(state, metadata, num_heads=num_heads, **overrides)
    check_state_dict(build_model(config).state_dict(), state, src)
    tensors = {k: v.contiguous() for k, v in state.items()}
    meta = {"format": "pt", METADATA_CONFIG_KEY: config.to_json(), "cascadev_source": src.name}
    save_file(tensors, str(dst), metadata=meta)
    return {
        "tensors": len(tensors),
        "parameters": sum(v.numel() for v in tensors.values()),
        "dtypes": sorted({str(v.dtype) for v in tensors.values()}),
        "config": config.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cascadev_core.convert_checkpoint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("src", help="input .pth (released CascadeV DiT checkpoint)")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument("--num-heads", type=int, default=None, help="attention heads (needed unless hidden is 1152)")
    parser.add_argument("--layout", default=None, help="attention layout preset name or JSON list to record")
    parser.add_argument("--input-size", type=int, default=None, help="latent tile size (released: 128)")
    parser.add_argument("--lats-per-vid", type=int, default=None, help="latent frames per window (released: 8)")
    parser.add_argument("--pe-interpolation", type=float, default=None, help="position divisor (released: 2.0)")
    args = parser.parse_args(argv)
    layout = args.layout
    if layout is not None and layout.lstrip().startswith("["):
        layout = json.loads(layout)
    try:
        summary = convert(
            args.src,
            args.dst,
            args.num_heads,
            layout,
            input_size=args.input_size,
            lats_per_vid=args.lats_per_vid,
            pe_interpolation=args.pe_interpolation,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
