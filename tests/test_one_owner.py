"""Structure that keeps memory honest: one factory builds every windowed denoiser (so every path honours the refine
options' memory budget) and one place wraps models in ComfyUI's ModelPatcher (so one owner loads and offloads
each model)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "nodes").glob("*.py")) + sorted((REPO / "cascadev_core").glob("*.py"))


def calls_of(name: str) -> list[str]:
    """``file:function`` of every call of ``name`` (a plain name, an attribute, or ``internal("...name")``)."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                f = call.func
                callee = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if isinstance(f, ast.Call) and f.args and isinstance(f.args[0], ast.Constant):
                    callee = str(f.args[0].value).rsplit(".", 1)[-1]  # internal("comfy.x.Name")(...)
                if callee == name:
                    found.append(f"{path.relative_to(REPO)}:{fn.name}")
    return sorted(set(found))


def test_one_factory_builds_every_windowed_denoiser():
    assert calls_of("WindowedDenoiser") == ["cascadev_core/refine.py:windowed_denoiser"]
    users = {site.split(":")[0] for site in calls_of("windowed_denoiser")}
    assert {"nodes/native.py", "cascadev_core/refine.py"} <= users  # the native path and the refine share it


def test_one_place_wraps_models_in_a_model_patcher():
    assert calls_of("ModelPatcher") == ["nodes/models.py:patch"]
