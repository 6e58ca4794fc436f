"""The Ray executor: model calls on long-lived workers, one per GPU (or CPU) slot of a Ray cluster.

:class:`RayWorkers` starts a local cluster (``address=""``, this machine's GPUs and CPUs) or attaches to one
(``"auto"``, ``"host:port"``, ``"ray://host:port"``) and keeps one actor per slot. Each actor holds one model at a
time, rebuilt from a picklable spec (:class:`~cascadev_core.executor.ModelSpec`: checkpoint file, dtype, layout),
loaded once and reused by every later call and run with the same spec. :meth:`RayWorkers.executor` binds a spec to
the workers as an :class:`~cascadev_core.executor.Executor`.

How calls run (:meth:`RayWorkers.map`): at most one call in flight per worker; ``progress.check()`` before each call
is started and while waiting, so a stop takes at most one call's time per worker and nothing else is started;
results are yielded in call order (the caller blends them, so the numbers do not depend on the worker count); a
worker that dies is killed, replaced, and its call rerun on the replacement. Workers pin torch to
``threads_per_worker`` threads (1 by default: CPU results are then bitwise those of a 1-thread local run).

The pack's core travels to the workers by value (``ray.cloudpickle.register_pickle_by_value``), so workers need
torch, safetensors and einops but not this package, whatever name the driver imported it under (ComfyUI imports it
as ``ComfyUI-CascadeV.cascadev_core``). Ray is imported only here, only when workers start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .progress import Progress

INSTALL = 'pip install "ray[client]"'
_CORE_PACKAGE = __name__.rpartition(".")[0]
_POLL_S = 0.05
log = logging.getLogger(__name__)


def import_ray():
    """The ``ray`` module, or ImportError saying what to install."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"multi-GPU workers need Ray, which is not installed: {INSTALL} ({err})") from None
    return ray


def _move(value: Any, device: torch.device | str) -> Any:
    """``value`` with every tensor (also inside tuples and lists) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device) for v in value)
    return value


class _Worker:
    """Actor body: one model at a time, built from a spec the first time a call names it.

    ``run(key, spec, *args)`` returns ``model(*args)`` (tensors moved to the worker's device, results to the CPU);
    ``spec`` is sent only when the driver believes this worker lacks ``key``.
    """

    def __init__(self, threads: int, device: str) -> None:
        torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.key: str | None = None
        self.model = None
        self.loads = self.jobs = 0

    def info(self) -> dict:
        return {"pid": os.getpid(), "loads": self.loads, "jobs": self.jobs, "device": str(self.device),
                "threads": torch.get_num_threads(), "key": self.key}  # fmt: skip

    def run(self, key: str, spec: Any, *args: Any) -> Any:
        if spec is not None and key != self.key:
            self.model = self.key = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.model, self.key = spec.build(self.device), key
            self.loads += 1
        if key != self.key:
            raise RuntimeError(f"worker {os.getpid()} holds model {self.key!r}, was called for {key!r}")
        with torch.no_grad():
            out = self.model(*_move(args, self.device))
        self.jobs += 1
        return _move(out, "cpu")


def spec_key(spec: Any) -> str:
    """Specs that print the same are the same model (a worker keeps what it built for the next run)."""
    return repr(spec)


class RayWorkers:
    """A pool of Ray actors, one per slot, reused across runs until :meth:`close`.

    Args:
        address: ``""`` starts a local cluster on this machine (loopback only); ``"auto"``, ``"host:port"`` or
            ``"ray://host:port"`` attach to a running one (its nodes need torch and the checkpoint files).
        workers: actors to keep; 0 = one per ``gpus_per_worker`` GPUs of the cluster, or one per CPU when the
            cluster has no GPU.
        gpus_per_worker: GPUs each actor reserves (fractions share a GPU); 0 = CPU actors.
        threads_per_worker: torch threads in each actor.
        object_store_mb: object store of a local cluster (calls' tensors pass through it).
        start_timeout_s: how long the actors may take to start before :meth:`start` fails.
        call_timeout_s: how long a call may run before :meth:`map` fails.
        retries: how many times one call is rerun after its worker died.
    """

    def __init__(
        self,
        address: str = "",
        workers: int = 0,
        gpus_per_worker: float = 1.0,
        threads_per_worker: int = 1,
        object_store_mb: int = 256,
        start_timeout_s: float = 300.0,
        call_timeout_s: float = 600.0,
        retries: int = 2,
    ) -> None:
        if not isinstance(address, str):
            raise TypeError(f"address: expected a string, got {type(address).__name__}")
        if workers < 0:
            raise ValueError(f"workers: expected >= 0 (0 = one per GPU, or per CPU), got {workers}")
        if gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker: expected >= 0 (0 = CPU workers), got {gpus_per_worker}")
        if threads_per_worker < 1:
            raise ValueError(f"threads_per_worker: expected >= 1, got {threads_per_worker}")
        self.address, self.workers, self.gpus_per_worker = address.strip(), workers, gpus_per_worker
        self.threads_per_worker, self.object_store_mb = threads_per_worker, object_store_mb
        self.start_timeout_s, self.call_timeout_s, self.retries = start_timeout_s, call_timeout_s, retries
        self.gpus = 0.0  # per actor, as placed
        self._actors: list = []
        self._loaded: list[str | None] = []
        self._connected = False
        self.replaced = 0  # workers replaced after dying

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def size(self) -> int:
        return len(self._actors)

    def start(self) -> RayWorkers:
        """Start (or attach to) the cluster and the actors; idempotent. Call it from a thread that lives as long as
        the workers (Ray's local processes die with the thread that started them)."""
        if self._actors:
            return self
        ray = import_ray()
        ray.cloudpickle.register_pickle_by_value(sys.modules[_CORE_PACKAGE])
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            if not ray.is_initialized():
                self._init(ray)
            count, self.gpus = self._plan(ray.cluster_resources())
            self._actors = [self._new_actor() for _ in range(count)]
            self._loaded = [None] * count
            try:
                ray.get([a.info.remote() for a in self._actors], timeout=self.start_timeout_s)
            except ray.exceptions.GetTimeoutError:
                have = ray.cluster_resources()
                raise RuntimeError(
                    f"workers: {count} workers with {self.gpus or 1:g} {'GPU' if self.gpus else 'CPU'} each did not "
                    f"start within {self.start_timeout_s:.0f}s; the cluster has {have.get('GPU', 0):g} GPU and "
                    f"{have.get('CPU', 0):g} CPU: lower workers or gpus_per_worker"
                ) from None
        except BaseException:
            self.close()
            raise
        return self

    def _init(self, ray) -> None:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address:
            options["address"] = self.address
        else:
            options.update(
                address="local",  # never a stale cluster recorded in /tmp/ray
                num_cpus=max(os.cpu_count() or 1, self.workers),  # every CPU worker asked for, even oversubscribed
                include_dashboard=False,
                object_store_memory=self.object_store_mb << 20,
                _node_ip_address="127.0.0.1",
                # no idle workers prestarted; no memory monitor (it kills workers when the whole machine is short of
                # memory, whoever uses it: on a shared desktop that is often another program)
                _system_config={"prestart_worker_first_driver": False, "memory_monitor_refresh_ms": 0},
            )
        ray.init(**options)
        self._connected = True
        if main:  # Ray replaces the SIGTERM handler with its own sys.exit; keep the application's
            signal.signal(signal.SIGTERM, previous)

    def _plan(self, resources: dict) -> tuple[int, float]:
        """``(actors, GPUs per actor)`` for the cluster's resources."""
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
        per = self.gpus_per_worker if gpus > 0 else 0.0
        if self.gpus_per_worker > 0 and gpus == 0:
            log.warning(
                "[CascadeV] gpus_per_worker=%g but the Ray cluster has no GPU: CPU workers", self.gpus_per_worker
            )
        count = self.workers or (int(gpus // per) if per else int(cpus))
        if count < 1:
            raise RuntimeError(
                f"workers: the Ray cluster has {gpus:g} GPU and {cpus:g} CPU, not enough for one worker with "
                f"gpus_per_worker={self.gpus_per_worker:g}"
            )
        return count, per

    def _new_actor(self):
        ray = import_ray()
        if self.gpus:
            options = {"num_gpus": self.gpus, "num_cpus": 0}
        else:
            options = {"num_cpus": 1}
        device = "cuda" if self.gpus else "cpu"
        return ray.remote(max_restarts=0, **options)(_Worker).remote(self.threads_per_worker, device)

    def _replace(self, slot: int) -> None:
        """Kill the actor in ``slot`` (a dead one still holds its resources) and start a new one there."""
        ray = import_ray()
        with contextlib.suppress(Exception):
            ray.kill(self._actors[slot])
        self._actors[slot] = self._new_actor()
        self._loaded[slot] = None
        self.replaced += 1

    def info(self) -> list[dict]:
        """Each worker's ``pid``, ``loads`` (models built), ``jobs`` (calls run), ``device``, ``threads``."""
        ray = import_ray()
        return ray.get([a.info.remote() for a in self._actors], timeout=self.call_timeout_s)

    def close(self) -> None:
        """Kill the actors and disconnect (a cluster this pool started is shut down). Idempotent."""
        ray = sys.modules.get("ray")
        if ray is None:
            return
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._loaded = [], []
        if self._connected and ray.is_initialized():
            ray.shutdown()
        self._connected = False

    def __enter__(self) -> RayWorkers:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ calls
    def executor(self, spec: Any) -> RayExecutor:
        """An executor whose calls run on these workers, on the model ``spec.build(device)``."""
        if not callable(getattr(spec, "build", None)):
            raise TypeError(f"spec: expected a ModelSpec or SamplerSpec (anything with build(device)), got {spec!r}")
        return RayExecutor(self, spec)

    def map(self, spec: Any, calls: Iterable[tuple], progress: Progress | None = None) -> Iterator[Any]:
        """``spec.build()(*args)`` for each ``args`` of ``calls`` on the workers; results in call order.

        ``calls`` is consumed lazily, one call per free worker. ``progress.check()`` runs before each call is started,
        while waiting and before each result is yielded (raising :class:`~cascadev_core.progress.Interrupted` abandons the calls in flight: each
        worker finishes at most its current one); ``progress.advance()`` as each result is yielded.
        """
        ray = import_ray()
        self.start()
        key = spec_key(spec)
        calls = iter(calls)
        free = deque(range(self.size))
        retry: deque[int] = deque()
        inflight: dict[Any, tuple[int, int]] = {}  # result ref -> (slot, call index)
        inputs: dict[int, tuple] = {}  # call index -> its arguments (tensors as object-store refs), kept for a rerun
        results: dict[int, Any] = {}
        deaths: dict[int, int] = {}
        started = done = 0
        exhausted = False
        active = time.monotonic()  # last time a call was started or finished
        try:
            while True:
                while free and (retry or not exhausted):
                    if retry:
                        index = retry.popleft()
                    else:
                        try:
                            args = next(calls)
                        except StopIteration:
                            exhausted = True
                            break
                        if progress is not None:
                            progress.check()
                        index, started = started, started + 1
                        inputs[index] = tuple(
                            ray.put(a) if isinstance(a, torch.Tensor) else a for a in _move(args, "cpu")
                        )
                    slot = free.popleft()
                    send = None if self._loaded[slot] == key else spec
                    self._loaded[slot] = key
                    inflight[self._actors[slot].run.remote(key, send, *inputs[index])] = (slot, index)
                    active = time.monotonic()
                while done in results:
                    if progress is not None:
                        progress.check()  # as before the call in a local run: a stop reports nothing more
                    out = results.pop(done)
                    done += 1
                    if progress is not None:
                        progress.advance()
                    yield out
                if not inflight:
                    if exhausted and not retry:
                        return
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL_S)
                if not ready:
                    if progress is not None:
                        progress.check()
                    if time.monotonic() - active > self.call_timeout_s:
                        raise TimeoutError(f"no worker call finished within {self.call_timeout_s:.0f}s")
                    continue
                slot, index = inflight.pop(ready[0])
                active = time.monotonic()
                try:
                    results[index] = ray.get(ready[0])
                except ray.exceptions.RayActorError as err:
                    deaths[index] = deaths.get(index, 0) + 1
                    if deaths[index] > self.retries:
                        raise RuntimeError(f"call {index} lost its worker {deaths[index]} times: {err}") from None
                    log.warning("[CascadeV] worker %d died (%s); replacing it and rerunning call %d", slot,
                                type(err).__name__, index)  # fmt: skip
                    self._replace(slot)
                    retry.append(index)
                except Exception:
                    self._loaded[slot] = None
                    raise
                else:
                    del inputs[index]
                free.append(slot)
        finally:
            inflight.clear()  # abandoned calls: each worker finishes its current one, nothing else was started


class RayExecutor:
    """An :class:`~cascadev_core.executor.Executor` running calls on :class:`RayWorkers` with the model ``spec``.

    ``map(fn, calls, progress)`` ignores ``fn`` (the driver's own copy): the workers call their copy rebuilt from
    ``spec``, which must describe the same model (same file, dtype and layout).
    """

    def __init__(self, workers: RayWorkers, spec: Any) -> None:
        self.workers, self.spec = workers, spec

    def map(self, fn: Any, calls: Iterable[tuple], progress: Progress | None = None) -> Iterator[Any]:
        return self.workers.map(self.spec, calls, progress)
