"""CascadeV Workers: CascadeV Refine's model calls on Ray workers, one per GPU (or CPU), here or on a cluster.

The node returns a handle (``CASCADEV_WORKERS``) for the optional ``workers`` input of CascadeV Refine. The workers
(:class:`cascadev_core.ray_executor.RayWorkers`) start on ComfyUI's prompt thread, which lives as long as the server
(Ray's local processes die with the thread that started them), and are kept for later prompts with the same
settings; other settings replace them (one Ray connection per process). They stop when the server exits: at exit, or
on SIGTERM (ComfyUI has no SIGTERM handler, and Ray cannot install its own from the prompt thread, so without ours
two Ray agents would outlive the server). Ray is optional: without it only this node fails, saying what to install.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass

from ..cascadev_core.ray_executor import RayExecutor, RayWorkers
from .comfyui import ComfyUIFeatureMissing, internal, io
from .types import CascadeVWorkersType

NODE = "CascadeV Workers"
_POOLS: dict[WorkersHandle, RayWorkers] = {}
_HOOKS: list[str] = []  # "atexit", "sigterm" once installed


@dataclass(frozen=True)
class WorkersHandle:
    """What flows on a ``CASCADEV_WORKERS`` link: the settings; the workers themselves live in this module."""

    address: str
    workers: int
    gpus_per_worker: float

    def pool(self) -> RayWorkers:
        """The started workers for these settings (started here, on the calling thread, if needed)."""
        pool = _POOLS.get(self)
        if pool is None:
            close_all()  # one Ray connection per process
            pool = _POOLS[self] = RayWorkers(self.address, self.workers, self.gpus_per_worker)
            _install_exit_hooks()
        try:
            return pool.start()
        except ImportError as err:
            _POOLS.pop(self, None)
            raise ImportError(
                f"{NODE}: Ray is not installed in ComfyUI's Python; install it with "
                f'{sys.executable} -m pip install "ray[client]" and restart ComfyUI ({err})'
            ) from None
        except Exception:
            _POOLS.pop(self, None)
            pool.close()
            raise

    def executor(self, spec) -> RayExecutor:
        """An executor running calls on these workers with the model ``spec`` (a ModelSpec)."""
        return self.pool().executor(spec)

    def describe(self) -> str:
        pool = self.pool()
        each = f"{pool.gpus:g} GPU" if pool.gpus else "1 CPU"
        where = self.address or "a local Ray cluster on this machine"
        return f"{pool.size} workers ({each} each) on {where}"


def close_all() -> None:
    """Stop every worker pool (and a local cluster they started)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        try:
            pool.close()
        except Exception as err:  # at exit: report, never raise
            logging.warning("[CascadeV] closing workers: %s", err)


def _install_exit_hooks() -> None:
    if "atexit" not in _HOOKS:
        atexit.register(close_all)
        _HOOKS.append("atexit")
    if "sigterm" in _HOOKS:
        return
    _HOOKS.append("sigterm")
    if threading.current_thread() is threading.main_thread():
        _install_sigterm()
        return
    try:  # signal handlers can only be set on the main thread: ComfyUI's event loop runs there
        internal("server.PromptServer").instance.loop.call_soon_threadsafe(_install_sigterm)
    except (ComfyUIFeatureMissing, AttributeError) as err:
        logging.warning("[CascadeV] workers will not be stopped on SIGTERM (%s); they stop at a normal exit", err)


def _install_sigterm() -> None:
    """On SIGTERM: stop the workers, then do what the previous handler did (by default: terminate)."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        close_all()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


class CascadeVWorkers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CascadeVWorkers",
            display_name=NODE,
            category="CascadeV/settings",
            description="Runs CascadeV Refine's model calls on Ray workers: one per GPU of this machine or of a Ray "
            "cluster, each with its own copy of the DiT (loaded once, kept for later prompts). The result is the "
            'same as without workers. Needs Ray in ComfyUI\'s Python: pip install "ray[client]".',
            inputs=[
                io.String.Input(
                    "address",
                    default="",
                    tooltip='Empty = start a local Ray cluster on this machine\'s GPUs (CPUs if none); "auto" = '
                    'the Ray cluster already running here; "ray://host:10001" or "host:6379" = a remote one '
                    "(its machines need the same model file path and torch).",
                ),
                io.Int.Input(
                    "workers",
                    default=0,
                    min=0,
                    max=1024,
                    tooltip="Workers to start; 0 = one per GPU (per CPU when the cluster has no GPU).",
                ),
                io.Float.Input(
                    "gpus_per_worker",
                    default=1.0,
                    min=0.0,
                    max=16.0,
                    step=0.25,
                    tooltip="GPUs each worker reserves: 1 = one GPU each, 0.5 = two workers share a GPU, "
                    "0 = CPU workers (use 0 on machines without a GPU).",
                ),
            ],
            outputs=[CascadeVWorkersType.Output(display_name="workers", tooltip="For 'workers' of CascadeV Refine.")],
        )

    @classmethod
    def execute(cls, address, workers, gpus_per_worker) -> io.NodeOutput:
        handle = WorkersHandle(address.strip(), int(workers), float(gpus_per_worker))
        return io.NodeOutput(handle, ui={"text": [handle.describe()]})


NODES = [CascadeVWorkers]
