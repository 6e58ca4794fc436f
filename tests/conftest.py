"""Shared pytest fixtures: paths to the repository, the shared reference data and the scripts, and Ray."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path(os.environ.get("CASCADEV_REFERENCE_DIR", REPO.parent / "shared" / "reference" / "cascadev"))

if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official implementation's outputs (``../shared/reference/cascadev`` beside the checkout)."""
    if not (REFERENCE_DIR / "README.md").exists():
        message = f"reference data not found at {REFERENCE_DIR} (the checkout needs ../shared beside it)"
        if os.environ.get("CASCADEV_REQUIRE_REFERENCE"):  # CI: parity is never skipped
            pytest.fail(message)
        pytest.skip(message)
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def ray_module():
    """The ``ray`` module; the test is skipped without it, unless ``CASCADEV_REQUIRE_RAY=1`` (CI), where it fails."""
    try:
        import ray
    except ImportError as err:
        message = f'ray is not importable ({err}); pip install "ray[client]"'
        if os.environ.get("CASCADEV_REQUIRE_RAY") == "1":
            pytest.fail(f"CASCADEV_REQUIRE_RAY=1 but {message}")
        pytest.skip(message)
    return ray
