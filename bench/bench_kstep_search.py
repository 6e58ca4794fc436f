"""k-step noise search on a known-answer testbed: preview fidelity, quality per cost, and wall time.

The testbed (``cascadev_core.noise_search.testbed``) is an image-to-video stand-in whose chunks are exact
DDIM draws from a Gaussian mixture built around the guide, so the final chunk is a deterministic function
of the noise and which mixture component a noise leads to is known. The evaluator is SSIM to the guide.

1. Fidelity: over many candidates of one chunk, the Spearman rank correlation between k-step preview
   scores and full s-step scores, for k in {1, 2, 4, 8, s}; how often the preview lands in the same
   component as the full run; and, in groups of m candidates, the full score of the candidate each k picks
   (brute force and naive for reference).
2. Long runs: ``sample_chunks`` in naive, search (each k) and brute-force modes over several seeds:
   evaluations per chunk, mean final score, share of the naive-to-brute-force gap that search closes.
3. Wall time of search (batched, and one by one) over naive, next to the evaluation and model-call ratios.
   The testbed has no fixed cost per model call; a second set of rows adds a simulated one, labelled so.
   A last row per set scores previews on 2 frames (``score_frames``) to show what scoring costs.

Prints readable tables; the last line is one JSON object with the headline figures.
Run: ``python bench/bench_kstep_search.py [--quick]`` (about 30 s on one core; ``--quick`` a few seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cascadev_core.noise_search import (  # noqa: E402
    SearchOptions,
    SSIMToGuide,
    candidate_seeds,
    draw_noise,
    sample_chunks,
)
from cascadev_core.noise_search.testbed import GaussianMixtureVideo, make_guide  # noqa: E402

SIMULATED_CALL_COST = 0.005  # seconds per model call in the simulated rows


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two score vectors (ties broken by order; the scores here are continuous)."""
    ra, rb = (v.double().argsort().argsort().double() for v in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def fidelity(model, guide, evaluator, ks, steps, count, group, batch=64):
    """Preview-vs-full statistics over ``count`` candidates of one chunk; rows for a table."""
    g = guide[None]
    seeds = candidate_seeds(0, 0, count)

    def run(num_steps):
        scores, components = [], []
        for i in range(0, count, batch):
            noise = draw_noise(model.noise_shape(guide), seeds[i : i + batch])
            frames = model.sample(noise, g, num_steps, lambda: None)
            scores.append(evaluator(frames, g))
            components.append(model.nearest_component(frames, g))
        return torch.cat(scores), torch.cat(components)

    full, full_comp = run(steps)
    groups = full.view(-1, group)
    rows = [{"k": "naive", "evals": steps, "pick": float(groups[:, 0].mean())}]
    for k in ks:
        preview, comp = run(k) if k != steps else (full, full_comp)
        picked = groups.gather(1, preview.view(-1, group).argmax(1, keepdim=True))
        rows.append(
            {
                "k": k,
                "evals": group * k + steps,
                "spearman": spearman(preview, full),
                "agree": float((comp == full_comp).float().mean()),
                "pick": float(picked.mean()),
            }
        )
    rows.append({"k": "brute", "evals": group * steps, "pick": float(groups.max(1).values.mean())})
    return rows, torch.bincount(full_comp, minlength=len(model.drift)).tolist()


def long_runs(guide, evaluator, configs, trials, model_kwargs):
    """Mean per-chunk figures of ``sample_chunks`` for each (label, options) over ``trials`` base seeds."""
    rows = []
    for label, opts in configs:
        results = []
        for trial in range(trials):
            model = GaussianMixtureVideo(**model_kwargs)
            options = SearchOptions(**opts, seed=1000 * trial)
            shape = model.noise_shape(guide)
            results.append(sample_chunks(model.sample, guide, shape, options, evaluator=evaluator))
        scores = [s for r in results for s in r.final_scores]
        rows.append(
            {
                "label": label,
                "evals": sum(r.evaluations for r in results) / (trials * options.num_chunks),
                "calls": sum(r.model_calls for r in results) / (trials * options.num_chunks),
                "score": sum(scores) / len(scores),
                "last": sum(r.final_scores[-1] for r in results) / trials,
                "secs": sum(r.wall_time for r in results) / trials,
            }
        )
    return rows


class OverheadSampler:
    """The testbed sampler plus a simulated fixed cost per model call (a sleep), e.g. weight streaming."""

    def __init__(self, model, seconds):
        self.model, self.seconds = model, seconds

    def __call__(self, noise, guide, num_steps, on_eval):
        def hook():
            on_eval()
            time.sleep(self.seconds)

        return self.model.sample(noise, guide, num_steps, hook)


def wall_times(guide, evaluator, base, repeats, model_kwargs, call_cost):
    """Best-of-``repeats`` wall time, counts and phase times of naive and of search batched, one by one,
    and batched with previews scored on 2 frames only."""
    variants = [
        ("naive", {"mode": "naive"}),
        ("search, batch m", {"mode": "search", "batch_size": None}),
        ("search, batch 1", {"mode": "search", "batch_size": 1}),
        ("search, 2 frames", {"mode": "search", "batch_size": None, "score_frames": 2}),
    ]
    out = {}
    for label, change in variants:
        best = None
        for _ in range(repeats):
            model = GaussianMixtureVideo(**model_kwargs)
            sample = OverheadSampler(model, call_cost) if call_cost else model.sample
            options = SearchOptions(**{**base, **change})
            start = time.perf_counter()
            result = sample_chunks(sample, guide, model.noise_shape(guide), options, evaluator=evaluator)
            secs = time.perf_counter() - start
            if best is None or secs < best["secs"]:
                best = {"secs": secs, "evals": result.evaluations, "calls": result.model_calls}
                best["times"] = result.times
        out[label] = best
    return out


def print_fidelity(rows, count, m, components):
    print(f"\n1. Preview fidelity over {count} candidates of one chunk")
    print(f"   (full runs landed in mixture components {components})")
    print(f"   pick = mean full-s score of the candidate chosen in each of {count // m} groups of m = {m}")
    print(f"   {'k':>6} {'evals/chunk':>11} {'spearman':>9} {'same comp':>9} {'pick':>7}")
    for r in rows:
        rho = f"{r['spearman']:9.3f}" if "spearman" in r else " " * 9
        agree = f"{r['agree']:9.2f}" if "agree" in r else " " * 9
        print(f"   {r['k']!s:>6} {r['evals']:>11} {rho} {agree} {r['pick']:7.4f}")


def print_long_runs(rows, chunks, trials):
    naive, brute = rows[0]["score"], rows[-1]["score"]
    print(f"\n2. Long videos: {chunks} chunks x {trials} seeds, batch = m")
    print("   score = mean final SSIM of a chunk to its guide; last = the last chunk's;")
    print("   gap closed = (score - naive) / (brute force - naive)")
    head = f"   {'mode':<13} {'evals/chunk':>11} {'calls/chunk':>11} {'score':>7} {'last':>7}"
    print(f"{head} {'gap closed':>10} {'s/run':>7}")
    for r in rows:
        r["gap"] = (r["score"] - naive) / (brute - naive) if brute != naive else float("nan")
        counts = f"{r['evals']:>11.0f} {r['calls']:>11.0f}"
        scores = f"{r['score']:7.4f} {r['last']:7.4f} {r['gap']:10.2f}"
        print(f"   {r['label']:<13} {counts} {scores} {r['secs']:7.3f}")


def print_wall_times(timings, k, m, chunks, repeats):
    print(f"\n3. Wall time over naive: search k={k}, m={m}, {chunks} chunks (best of {repeats})")
    print("   preview / full / score = seconds in each phase (score: the evaluator on every candidate)")
    head = f"   {'cost model':<20} {'run':<16} {'seconds':>8} {'wall ratio':>10} {'eval ratio':>10}"
    print(f"{head} {'call ratio':>10} {'preview':>8} {'full':>7} {'score':>7}")
    ratios = {}
    for cost, table in timings.items():
        naive = table["naive"]
        for label, t in table.items():
            wall, evals = t["secs"] / naive["secs"], t["evals"] / naive["evals"]
            calls = t["calls"] / naive["calls"]
            model_time = (t["times"]["preview"] + t["times"]["full"]) / naive["times"]["full"]
            ratios[(cost, label)] = {"wall": wall, "evals": evals, "calls": calls, "model_time": model_time}
            p = t["times"]
            line = f"   {cost:<20} {label:<16} {t['secs']:8.3f} {wall:10.2f} {evals:10.2f} {calls:10.2f}"
            print(f"{line} {p['preview']:8.3f} {p['full']:7.3f} {p['score']:7.3f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) to check the script works")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        steps, count, m, chunks, trials, repeats, size, frames = 16, 48, 4, 3, 2, 1, 16, 6
    else:
        steps, count, m, chunks, trials, repeats, size, frames = 32, 256, 8, 4, 6, 5, 24, 8
    ks = sorted({1, 2, 4, 8, steps})
    model_kwargs = {"num_frames": frames}
    guide = make_guide(size, size, seed=0)
    evaluator = SSIMToGuide()
    start = time.perf_counter()
    print(f"testbed: GaussianMixtureVideo(T={frames}, K=6, {size}x{size} RGB), DDIM over Karras sigmas")
    print(f"evaluator: SSIM to the guide (higher is better); s = {steps}, m = {m}")

    model = GaussianMixtureVideo(**model_kwargs)
    fid, components = fidelity(model, guide, evaluator, ks, steps, count, m)
    print_fidelity(fid, count, m, components)

    base = {"num_chunks": chunks, "num_candidates": m, "steps": steps}
    configs = [("naive", {**base, "mode": "naive"})]
    configs += [(f"search k={k}", {**base, "preview_steps": k}) for k in ks if k < steps]
    configs += [("brute force", {**base, "mode": "brute_force"})]
    runs = long_runs(guide, evaluator, configs, trials, model_kwargs)
    print_long_runs(runs, chunks, trials)

    k = min(8, steps)
    timing_opts = {**base, "preview_steps": k}
    simulated_label = f"simulated {SIMULATED_CALL_COST * 1000:g} ms/call"
    timings = {
        label: wall_times(guide, evaluator, timing_opts, repeats, model_kwargs, cost)
        for label, cost in (("measured", 0.0), (simulated_label, SIMULATED_CALL_COST))
    }
    ratios = print_wall_times(timings, k, m, chunks, repeats)

    brute_evals = runs[-1]["evals"]
    measured = ratios[("measured", "search, batch m")]
    simulated = ratios[(simulated_label, "search, batch m")]
    headline = {
        "bench": "kstep_search",
        "quick": args.quick,
        "s": steps,
        "m": m,
        "chunks": chunks,
        "trials": trials,
        "spearman_by_k": {str(r["k"]): round(r["spearman"], 4) for r in fid if "spearman" in r},
        "component_agreement_by_k": {str(r["k"]): round(r["agree"], 4) for r in fid if "agree" in r},
        "mean_final_score": {r["label"]: round(r["score"], 4) for r in runs},
        "gap_closed": {r["label"]: round(r["gap"], 3) for r in runs},
        "evaluations_per_chunk": {r["label"]: round(r["evals"]) for r in runs},
        "cost_vs_brute_force": {r["label"]: round(r["evals"] / brute_evals, 4) for r in runs},
        "timing_k": k,
        "wall_ratio_search_to_naive": round(measured["wall"], 3),
        "eval_ratio_search_to_naive": round(measured["evals"], 3),
        "call_ratio_search_to_naive": round(measured["calls"], 3),
        "model_time_ratio_search_to_naive": round(measured["model_time"], 3),
        "wall_ratio_search_batch1_to_naive": round(ratios[("measured", "search, batch 1")]["wall"], 3),
        "wall_ratio_search_to_naive_simulated_call_cost": round(simulated["wall"], 3),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
