"""The Ray executor on a local cluster of 2 CPU workers with a tiny DiT: same numbers as a local run (bitwise, both
at 1 torch thread), workers reused, a killed worker replaced with the output unchanged, interrupts, the chunk search,
and no process left after close. One cluster for the whole module."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

import psutil
import pytest
import torch

from cascadev_core import Interrupted
from cascadev_core.executor import LOCAL, ModelSpec, SamplerSpec
from cascadev_core.noise_search import SearchOptions, SSIMToGuide, sample_chunks
from cascadev_core.noise_search.testbed import GaussianMixtureVideo, make_guide
from cascadev_core.ray_executor import RayWorkers, import_ray
from cascadev_core.refine import RefineOptions, refine

pytestmark = pytest.mark.usefixtures("single_thread")

WORKERS = 2
OPTIONS = RefineOptions(steps=3, max_batch=2, tile_blend="feather")  # 2 windows x 4 tiles: 4 calls per step


def ray_processes() -> dict[int, str]:
    """Ray processes started by this test process (its descendants): pid -> name."""
    out = {}
    for proc in psutil.Process().children(recursive=True):
        with_name = (proc.name(), " ".join(proc.cmdline()[:2]))
        if any("ray" in part.lower() for part in with_name):
            out[proc.pid] = with_name[0]
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def before(ray_module):
    return ray_processes()


@pytest.fixture(scope="module")
def pool(before):
    workers = RayWorkers(workers=WORKERS, gpus_per_worker=0, call_timeout_s=120, start_timeout_s=180)
    try:
        yield workers.start()
    finally:
        workers.close()


@pytest.fixture(scope="module")
def dit_file(tmp_path_factory):
    from make_tiny_models import write_tiny_dit

    return write_tiny_dit(tmp_path_factory.mktemp("ray") / "tiny_dit.safetensors")


@pytest.fixture(scope="module")
def spec(dit_file):
    return ModelSpec(str(dit_file), dtype=torch.float32, layout="official")


@pytest.fixture(scope="module")
def cond():
    return torch.randn(1, 16, 12, 7, 7, generator=torch.Generator().manual_seed(1))  # latents [1, 4, 12, 28, 28]


def run(spec, cond, executor=None, **hooks):
    dit = spec.build()
    return refine(dit, cond, lats_per_vid=8, input_size=16, options=OPTIONS, seed=3, executor=executor, **hooks)


@pytest.fixture(scope="module")
def local(spec, cond):
    steps = []
    out = run(spec, cond, on_step=lambda done, total: steps.append((done, total)))
    return out, steps


def test_refine_on_workers_is_bitwise_the_local_run(pool, spec, cond, local):
    steps = []
    out = run(spec, cond, pool.executor(spec), on_step=lambda done, total: steps.append((done, total)))
    assert torch.equal(out, local[0])
    assert steps == local[1] == [(i, 12) for i in range(1, 13)]  # one unit per model call, in order
    info = pool.info()
    assert [w["threads"] for w in info] == [1, 1]
    assert sum(w["jobs"] for w in info) >= 12 and all(w["jobs"] > 0 for w in info)  # both workers took calls


def test_workers_and_their_models_are_reused(pool, spec, cond, local):
    first = pool.info()
    assert torch.equal(run(spec, cond, pool.executor(spec)), local[0])
    again = pool.info()
    assert [w["pid"] for w in again] == [w["pid"] for w in first]
    assert [w["loads"] for w in again] == [w["loads"] for w in first] == [1, 1]  # weights loaded once per worker


def test_killed_worker_is_replaced_and_the_output_is_unchanged(pool, spec, cond, local):
    pids = [w["pid"] for w in pool.info()]
    replaced = pool.replaced

    def kill_once(done, total):
        if done == 5:
            os.kill(pids[0], signal.SIGKILL)  # mid-step: step 2 of 3, calls in flight

    out = run(spec, cond, pool.executor(spec), on_step=kill_once)
    assert torch.equal(out, local[0])
    assert pool.replaced == replaced + 1
    now = [w["pid"] for w in pool.info()]
    assert now[0] != pids[0] and now[1] == pids[1]


def test_interrupt_starts_nothing_more_than_one_call_per_worker(pool, spec, cond):
    jobs_before = sum(w["jobs"] for w in pool.info())
    seen = []
    with pytest.raises(Interrupted):
        run(spec, cond, pool.executor(spec), on_step=lambda done, total: seen.append(done),
            should_stop=lambda: len(seen) >= 3)  # fmt: skip
    time.sleep(1.0)
    ran = sum(w["jobs"] for w in pool.info()) - jobs_before  # info() queues behind any call still running
    assert seen == [1, 2, 3]
    assert 3 <= ran <= 3 + WORKERS, ran  # the finished calls plus at most the one in flight on each worker


def test_local_executor_is_todays_call_pattern(spec, cond, local):
    calls = []

    def counting(x, t, frames):
        calls.append(tuple(x.shape))
        return dit(x, t, frames)

    dit = spec.build()
    out = refine(counting, cond, lats_per_vid=8, input_size=16, options=OPTIONS, seed=3, executor=LOCAL)
    assert torch.equal(out, local[0])
    assert calls == [(16, 20, 16, 16)] * 12  # 2 jobs of 8 frames per call, 4 calls x 3 steps


def test_chunk_search_on_workers_equals_local(pool):
    model = GaussianMixtureVideo(num_frames=4)
    guide = make_guide(16, 16)
    options = SearchOptions(num_chunks=2, num_candidates=4, preview_steps=2, steps=4, batch_size=1, seed=7)
    kwargs = dict(evaluator=SSIMToGuide(), options=options)
    local_steps, remote_steps = [], []
    want = sample_chunks(model.sample, guide, model.noise_shape(guide), on_step=lambda *a: local_steps.append(a),
                         **kwargs)  # fmt: skip
    spec = SamplerSpec(functools.partial(getattr, GaussianMixtureVideo(num_frames=4), "sample"))
    got = sample_chunks(model.sample, guide, model.noise_shape(guide), executor=pool.executor(spec),
                        on_step=lambda *a: remote_steps.append(a), **kwargs)  # fmt: skip
    assert torch.equal(got.frames, want.frames)
    assert [c.candidate_scores for c in got.chunks] == [c.candidate_scores for c in want.chunks]
    assert [c.chosen_seed for c in got.chunks] == [c.chosen_seed for c in want.chunks]
    assert [(c.evaluations, c.model_calls) for c in got.chunks] == [(c.evaluations, c.model_calls) for c in want.chunks]
    assert remote_steps == local_steps


def test_close_leaves_no_ray_process(pool, before):
    started = ray_processes()
    assert len(started) > len(before)  # gcs_server, raylet, the workers, ...
    pool.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in started):
        time.sleep(0.2)
    left = {p: n for p, n in started.items() if alive(p)}
    assert not left, left
    assert ray_processes() == before


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "ray\[client\]"'):
        import_ray()
    with pytest.raises(ImportError, match="ray"):
        RayWorkers(workers=1).start()
