"""k-step noise search on a known-answer testbed: preview fidelity, quality per cost, and wall time.

The testbed (``cascadev_core.noise_search.testbed``) is an image-to-video stand-in whose chunks are exact
DDIM draws from a Gaussian mixture built around the guide, so the final chunk is a deterministic function
of the noise and which mixture component a noise leads to is known. The evaluator is SSIM to the guide.

1. Fidelity: over many candidates of one chunk, the Spearman rank correlation between k-step preview
   scores and full s-step scores, for k in {1, 2, 3, 4, 5, 6, 8, s}; how often the preview lands in the same
   component as the full run; and, in groups of m candidates, the full score of the candidate each k picks
   (brute force and naive for reference).
2. Long runs: ``sample_chunks`` in naive, search (each k) and brute-force modes over several seeds:
   evaluations per chunk, mean final score, share of the naive-to-brute-force gap that search closes.
3. Wall time of search (batched, and one by one) over naive, next to the evaluation and model-call ratios.
   The testbed has no fixed cost per model call; a second set of rows adds a simulated one, labelled so.
   A last row per set scores previews on 2 frames (``score_frames``) to show what scoring costs.
4. Search vs halving at equal evaluations per chunk: for several m and k, the share of the naive -> brute force
   gap each closes over one chunk and over four, across many base seeds, with 95% bootstrap intervals over
   seeds (and of the paired difference). Every run goes through ``sample_chunks``; a cache keyed by (guide,
   candidate seed, steps) computes each distinct run once across modes, so the counts stay those of the mode
   while the figures come at a fraction of the cost. One chunk is the first chunk of the four-chunk runs
   (same seeds, same guide: the same as a one-chunk run, checked).
5. Wall time of halving over search on the same runs (uncached), measured and with a simulated call cost.

Prints readable tables; the last line is one JSON object with the headline figures.
Run: ``python bench/bench_kstep_search.py [--quick] [--seeds N]`` (a few minutes on one core; ``--quick`` a
few seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
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
from cascadev_core.noise_search.rungs import Rung, survivor_counts  # noqa: E402
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
                "evals": SearchOptions(num_candidates=group, preview_steps=k, steps=steps).evaluations_per_chunk,
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


class CachedRuns:
    """The testbed's sampler and an evaluator behind caches, for comparing modes on the same candidates.

    ``sample`` takes the candidates' ``seeds`` (the ``sample_chunks`` contract) and computes only the runs of
    (guide, seed, steps) not seen before; it still calls ``on_eval`` once per step, so the counts reported
    are those of the mode. ``score`` caches the evaluator by the bytes of the frames it is given.
    """

    def __init__(self, model_kwargs, evaluator):
        self.model, self.evaluator = GaussianMixtureVideo(**model_kwargs), evaluator
        self.name = getattr(evaluator, "name", "evaluator")
        self.runs, self.scores = {}, {}

    def sample(self, noise, guide, num_steps, on_eval, seeds):
        g = _digest(guide)
        missing = [i for i, seed in enumerate(seeds) if (g, seed, num_steps) not in self.runs]
        if missing:
            out = self.model.sample(noise[missing], guide, num_steps, lambda: None)
            self.runs.update({(g, seeds[i], num_steps): out[j] for j, i in enumerate(missing)})
        for _ in range(num_steps):
            on_eval()
        return torch.stack([self.runs[(g, seed, num_steps)] for seed in seeds])

    def score(self, frames, guide):
        key = (_digest(frames), _digest(guide))
        if key not in self.scores:
            self.scores[key] = self.evaluator(frames, guide)
        return self.scores[key]


def _digest(tensor: torch.Tensor) -> bytes:
    return hashlib.blake2b(tensor.detach().contiguous().cpu().numpy().tobytes(), digest_size=16).digest()


@dataclasses.dataclass(frozen=True)
class EqualShares(SearchOptions):
    """Halving whose rungs share the preview budget equally (the rule first tried), for comparison: with R rungs,
    ``l_r = floor(P_r / (n_r * (R - r)))``; otherwise as :func:`~cascadev_core.noise_search.halving_rungs`."""

    @property
    def rungs(self) -> list[Rung]:
        if self.mode != "halving":
            return super().rungs
        m, s = self.num_candidates, self.steps
        counts = survivor_counts(m)
        for num_rungs in range(len(counts), 0, -1):
            budget, lengths = m * self.effective_preview_steps, []
            for r, n in enumerate(counts[:num_rungs]):
                lengths.append(budget // (n * (num_rungs - r)))
                budget -= n * lengths[-1]
            if lengths[0] >= 1 and all(a < b for a, b in zip(lengths, lengths[1:])):
                break
        else:
            return []
        rungs = [Rung(n, min(length, s)) for n, length in zip(counts, lengths)]
        return rungs[: next((i + 1 for i, r in enumerate(rungs) if r.steps == s), len(rungs))]


def halving_vs_search(guide, evaluator, ms, ks, steps, chunks, seeds, model_kwargs):
    """Per base seed, the final scores of naive, brute force (each m), search, halving and halving with equal
    rung shares (each m, k).

    Returns ``(scores, evals)``: ``scores[label]`` is a ``[seeds, chunks]`` tensor of final scores,
    ``evals[label]`` the measured evaluations per chunk."""
    configs = [("naive", SearchOptions, {"mode": "naive"})]
    for m in ms:
        configs.append((f"brute m={m}", SearchOptions, {"mode": "brute_force", "num_candidates": m}))
        for k in ks:
            for label, cls, mode in (("search", SearchOptions, "search"), ("halving", SearchOptions, "halving"),
                                     ("equal", EqualShares, "halving")):  # fmt: skip
                configs.append((f"{label} m={m} k={k}", cls, {"mode": mode, "num_candidates": m, "preview_steps": k}))
    scores, evals = {}, {}
    shape = GaussianMixtureVideo(**model_kwargs).noise_shape(guide)
    for trial in range(seeds):
        cache = CachedRuns(model_kwargs, evaluator)
        for label, cls, opts in configs:
            options = cls(num_chunks=chunks, steps=steps, seed=1000 * trial, **opts)
            result = sample_chunks(cache.sample, guide, shape, options, evaluator=cache.score)
            scores.setdefault(label, []).append(result.final_scores)
            evals[label] = result.evaluations / chunks
        if trial == 0 and chunks > 1:  # a one-chunk run scores what the first chunk of the long run scored
            alone = cls(**{**opts, "num_chunks": 1, "steps": steps, "seed": 0})
            single = sample_chunks(cache.sample, guide, shape, alone, evaluator=cache.score)
            assert single.final_scores[0] == scores[label][0][0], "one chunk differs from the first of four"
    return {label: torch.tensor(v, dtype=torch.float64) for label, v in scores.items()}, evals


def closure_table(scores, ms, ks, resamples=4000):
    """Gap closed by search and halving, with 95% bootstrap intervals over seeds, for each (m, k).

    Gap closed = (mean score - mean naive) / (mean brute force(m) - mean naive), scores averaged over chunks
    and seeds; each bootstrap resample draws seeds with replacement and recomputes every ratio from the same
    draw, so the difference halving - search is paired."""
    n, chunks = next(iter(scores.values())).shape
    draws = torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(0))
    per_seed = {label: s.mean(dim=1) for label, s in scores.items()}  # [seeds]
    boot = {label: v[draws].mean(dim=1) for label, v in per_seed.items()}  # [resamples]
    point = {label: v.mean() for label, v in per_seed.items()}
    rows = []
    for m in ms:
        for k in ks:
            row = {"chunks": chunks, "m": m, "k": k, "seeds": n}
            row["gap"] = float(point[f"brute m={m}"] - point["naive"])
            boot_closed = {}
            for mode in ("search", "halving", "equal"):
                row[mode] = float((point[f"{mode} m={m} k={k}"] - point["naive"]) / row["gap"])
                boot_closed[mode] = _bootstrap_closure(boot, m, k, mode)
                row[f"{mode}_ci"] = _interval(boot_closed[mode])
            row["diff"] = row["halving"] - row["search"]
            row["diff_ci"] = _interval(boot_closed["halving"] - boot_closed["search"])
            rows.append(row)
    return rows


def _bootstrap_closure(boot, m, k, mode):
    return (boot[f"{mode} m={m} k={k}"] - boot["naive"]) / (boot[f"brute m={m}"] - boot["naive"])


def _interval(values: torch.Tensor) -> list[float]:
    """The 2.5% and 97.5% quantiles, ignoring resamples whose gap was zero (too few seeds)."""
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return [float("nan"), float("nan")]
    return [float(values.quantile(0.025)), float(values.quantile(0.975))]


def print_closure(rows, evals, steps):
    print(f"\n4. Search vs halving at equal evaluations per chunk, s = {steps}")
    print("   gap closed = (score - naive) / (brute force with the same m - naive), mean over seeds and chunks;")
    print("   [95% bootstrap interval over seeds]; diff = halving - search on the same seeds (paired);")
    print("   halving: each rung twice the budget of the one before (the rule); equal: equal rung shares")
    head = f"   {'chunks':>6} {'seeds':>5} {'m':>3} {'k':>2} {'evals s/h':>9} {'gap':>7} {'search':>6} {'[95% CI]':>15}"
    print(f"{head} {'halving':>7} {'[95% CI]':>15} {'diff':>6} {'[95% CI]':>15} {'equal':>6} {'[95% CI]':>15}")
    for r in rows:
        label = f"m={r['m']} k={r['k']}"
        counts = f"{evals['search ' + label]:>4.0f}/{evals['halving ' + label]:<4.0f}"
        line = f"   {r['chunks']:>6} {r['seeds']:>5} {r['m']:>3} {r['k']:>2} {counts:>9} {r['gap']:7.4f}"
        line += f" {r['search']:6.2f} {_fmt(r['search_ci'])} {r['halving']:7.2f} {_fmt(r['halving_ci'])}"
        print(f"{line} {r['diff']:+6.2f} {_fmt(r['diff_ci'])} {r['equal']:6.2f} {_fmt(r['equal_ci'])}")
    for chunks, means in mean_closure(rows).items():
        text = ", ".join(f"{mode} {value:.2f}" for mode, value in means.items())
        print(f"   mean gap closed over the {chunks}-chunk rows: {text}")


def mean_closure(rows) -> dict[int, dict[str, float]]:
    """Mean gap closed by each mode over the rows of each chunk count."""
    out = {}
    for chunks in sorted({r["chunks"] for r in rows}):
        mine = [r for r in rows if r["chunks"] == chunks]
        out[chunks] = {mode: sum(r[mode] for r in mine) / len(mine) for mode in ("search", "halving", "equal")}
    return out


def _fmt(interval):
    return f"[{interval[0]:+.2f}, {interval[1]:+.2f}]".rjust(15)


def halving_wall_times(guide, evaluator, configs, chunks, steps, repeats, model_kwargs, call_cost):
    """Best-of-``repeats`` wall time, counts and phase times of search and halving for each (m, k), uncached;
    the two modes alternate within each repeat so that a change in machine load hits both alike."""
    out = {}
    for m, k in configs:
        for _ in range(repeats):
            for mode in ("search", "halving"):
                model = GaussianMixtureVideo(**model_kwargs)
                sample = OverheadSampler(model, call_cost) if call_cost else model.sample
                opts = SearchOptions(mode=mode, num_chunks=chunks, num_candidates=m, preview_steps=k, steps=steps)
                start = time.perf_counter()
                result = sample_chunks(sample, guide, model.noise_shape(guide), opts, evaluator=evaluator)
                secs = time.perf_counter() - start
                best = out.get((m, k, mode))
                if best is None or secs < best["secs"]:
                    out[(m, k, mode)] = {"secs": secs, "evals": result.evaluations, "calls": result.model_calls}
                    out[(m, k, mode)]["times"] = result.times
    return out


def print_halving_wall_times(timings, chunks, repeats):
    print(f"\n5. Wall time of halving over search on the same {chunks}-chunk runs (best of {repeats}, batch = m)")
    print("   per chunk: evaluations and model calls; model / score = seconds sampling / scoring, whole run")
    head = f"   {'cost model':<20} {'m':>3} {'k':>2} {'evals s/h':>9} {'calls s/h':>9} {'search s':>8}"
    print(f"{head} {'halving s':>9} {'wall ratio':>10} {'model s/h':>11} {'score s/h':>11}")
    ratios = {}
    for cost, table in timings.items():
        for m, k in sorted({(m, k) for m, k, _ in table}):
            search, halving = table[(m, k, "search")], table[(m, k, "halving")]
            ratio = halving["secs"] / search["secs"]
            ratios[(cost, m, k)] = ratio
            evals = f"{search['evals'] // chunks}/{halving['evals'] // chunks}"
            calls = f"{search['calls'] // chunks}/{halving['calls'] // chunks}"
            model = "/".join(f"{t['times']['preview'] + t['times']['full']:.2f}" for t in (search, halving))
            score = "/".join(f"{t['times']['score']:.2f}" for t in (search, halving))
            line = f"   {cost:<20} {m:>3} {k:>2} {evals:>9} {calls:>9} {search['secs']:8.3f} {halving['secs']:9.3f}"
            print(f"{line} {ratio:10.2f} {model:>11} {score:>11}")
    return ratios


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
    parser.add_argument("--seeds", type=int, nargs=2, default=None, help="base seeds of section 4, one chunk and long")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        steps, count, m, chunks, trials, repeats, size, frames = 16, 48, 4, 3, 2, 1, 16, 6
        halving = {"one": ((4,), (3, 8)), "long": ((4,), (8,)), "seeds": (3, 2), "timing": [(4, 8)]}
    else:
        steps, count, m, chunks, trials, repeats, size, frames = 32, 256, 8, 4, 6, 5, 24, 8
        halving = {"one": ((4, 8, 16), (3, 4, 8)), "long": ((4, 8, 16), (4, 8)), "seeds": (40, 20)}
        halving["timing"] = [(8, 4), (8, 8), (16, 8)]
    halving_seeds = args.seeds or halving["seeds"]
    ks = sorted({1, 2, 4, 8, steps})
    fidelity_ks = sorted({*ks, 3, 5, 6})
    model_kwargs = {"num_frames": frames}
    guide = make_guide(size, size, seed=0)
    evaluator = SSIMToGuide()
    start = time.perf_counter()
    print(f"testbed: GaussianMixtureVideo(T={frames}, K=6, {size}x{size} RGB), DDIM over Karras sigmas")
    print(f"evaluator: SSIM to the guide (higher is better); s = {steps}, m = {m}")

    model = GaussianMixtureVideo(**model_kwargs)
    fid, components = fidelity(model, guide, evaluator, fidelity_ks, steps, count, m)
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

    closure, evals = [], {}
    for (ms, ks), num_chunks, seeds in zip((halving["one"], halving["long"]), (1, chunks), halving_seeds):
        scores, pass_evals = halving_vs_search(guide, evaluator, ms, ks, steps, num_chunks, seeds, model_kwargs)
        closure += closure_table(scores, ms, ks)
        evals.update(pass_evals)
    print_closure(closure, evals, steps)
    halving_timings = {
        label: halving_wall_times(guide, evaluator, halving["timing"], chunks, steps, repeats, model_kwargs, cost)
        for label, cost in (("measured", 0.0), (simulated_label, SIMULATED_CALL_COST))
    }
    halving_ratios = print_halving_wall_times(halving_timings, chunks, repeats)

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
        "halving_seeds": {"1": halving_seeds[0], str(chunks): halving_seeds[1]},
        "gap_closed_search_vs_halving": {
            f"chunks={r['chunks']} m={r['m']} k={r['k']}": {
                "evals": evals[f"halving m={r['m']} k={r['k']}"],
                "search": round(r["search"], 3),
                "halving": round(r["halving"], 3),
                "equal_shares": round(r["equal"], 3),
                "diff": round(r["diff"], 3),
                "diff_ci95": [None if v != v else round(v, 3) for v in r["diff_ci"]],
            }
            for r in closure
        },
        "mean_gap_closed": {
            str(c): {mode: round(v, 3) for mode, v in means.items()} for c, means in mean_closure(closure).items()
        },
        "wall_ratio_halving_to_search": {
            f"{cost} m={m} k={k}": round(v, 3) for (cost, m, k), v in halving_ratios.items()
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
