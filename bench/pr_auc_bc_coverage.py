"""Coverage of the PR AUC (and ECE) bootstrap intervals by simulation (issue 15 item 1,
fourth pass): percentile, bias-corrected percentile (BC) and basic (reverse percentile),
all from the same replicates (no extra state).

Designs as ``bench/pr_auc_logit_coverage.py``: binormal scores, 1024-bin histogram, truth the
population value; ``--windows`` windows per design, 200 replicates. BC: ``z0 = Φ⁻¹(share of
replicates < the value on the bootstrap's grid)``, percentiles ``Φ(2·z0 ± z)``. Basic:
``2·v − q(1 − α/2)``, ``2·v − q(α/2)``. pct-b / pct-2b: the percentile interval moved by
−b / −2b, ``b = mean(replicates) − v`` the bootstrap bias.
All moved onto the fine metric as the daemon does.

    PYTHONPATH=$PWD .venv/bin/python bench/pr_auc_bc_coverage.py [--windows 1000] [--max-n 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import BootstrapLabel, average_precision

BINS, Z = 1024, float(stats.norm.ppf(0.975))


def intervals(reps: np.ndarray, estimate: float) -> dict[str, tuple[float, float]]:
    v, r = float(reps[0]), reps[1:][np.isfinite(reps[1:])]
    shift = estimate - v
    lo, hi = np.quantile(r, [0.025, 0.975])
    bias = float(np.mean(r)) - v
    share = (np.sum(r < v) + 0.5 * np.sum(r == v)) / r.size
    z0 = float(stats.norm.ppf(np.clip(share, 0.5 / r.size, 1 - 0.5 / r.size)))
    blo, bhi = np.quantile(r, stats.norm.cdf([2 * z0 - Z, 2 * z0 + Z]))
    return {"percentile": (lo + shift, hi + shift), "bc": (blo + shift, bhi + shift),
            "basic": (2 * v - hi + shift, 2 * v - lo + shift),
            "pct-b": (lo - bias + shift, hi - bias + shift),
            "pct-2b": (lo - 2 * bias + shift, hi - 2 * bias + shift)}


def design(prev: float, n: int, mu: float, windows: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    edges = np.arange(BINS + 1) / BINS
    x_edges = stats.norm.ppf(edges) * 2 + mu / 2
    p_pos = np.diff(stats.norm.cdf(x_edges - mu))
    p_neg = np.diff(stats.norm.cdf(x_edges))
    centres = (np.arange(BINS) + 0.5) / BINS
    truth = float(average_precision(((1 - prev) * p_neg)[None], (prev * p_pos)[None])[0])
    # ECE truth: population Σ_bins |P(y=1, bin) − E[s; bin]| on the model's 10 bins
    cal = np.minimum((centres * 10).astype(int), 9)
    py = np.bincount(cal, prev * p_pos, 10)
    ps = np.bincount(cal, (prev * p_pos + (1 - prev) * p_neg) * centres, 10)
    ece_truth = float(np.abs(py - ps).sum())
    n_pos = rng.binomial(n, prev, windows)
    pos = np.array([rng.multinomial(k, p_pos) for k in n_pos])
    neg = np.array([rng.multinomial(n - k, p_neg) for k in n_pos])
    ap = average_precision(neg, pos)
    s, y, starts = [], [], [0]
    for p, q in zip(pos, neg, strict=True):
        s += [np.repeat(centres, p), np.repeat(centres, q)]
        y += [np.ones(p.sum()), np.zeros(q.sum())]
        starts.append(starts[-1] + p.sum() + q.sum())
    s, y = np.concatenate(s), np.concatenate(y)
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(s.size, np.int8),
                        key=rng.integers(0, 2**63, s.size).astype(np.uint64))
    accs = [BootstrapLabel("binary", ("pr_auc", "ece"), 200) for _ in pos]
    BootstrapLabel.update_many(cols, [(a, np.arange(starts[i], starts[i + 1]))
                                      for i, a in enumerate(accs)])
    hits: dict[str, list[bool]] = {}
    for a, v in zip(accs, ap, strict=True):
        reps = a.replicates_of()
        for metric, est, true in (("pr_auc", float(v), truth),
                                  ("ece", float(reps["ece"][0]), ece_truth)):
            for kind, (lo, hi) in intervals(reps[metric], est).items():
                hits.setdefault(f"{metric} {kind}", []).append(lo <= true <= hi)
    cov = "  ".join(f"{k} {np.mean(h):.3f}" for k, h in hits.items())
    return f"prev {prev:.1f} n {n:5d} mu {mu:.1f}  {cov}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--max-n", type=int, default=5000)
    args = ap.parse_args()
    for prev in (0.1, 0.3, 0.5):
        for n in (200, 1000, 5000):
            if n > args.max_n:
                continue
            for mu in (1.0, 2.0):
                print(design(prev, n, mu, args.windows, int(prev * 100 + n + mu * 7)),
                      flush=True)


if __name__ == "__main__":
    main()
