"""Coverage of the logit interval for PR AUC (Boyd, Eng & Page 2013) against the Poisson
bootstrap, by simulation (issue 15 item 1, third pass): is the analytic interval good enough
to replace the bootstrap of ``pr_auc``?

Binormal scores (negatives N(0, 1), positives N(mu, 1), mapped into [0, 1] monotonically),
the metric as slicewatch computes it (average precision on the 1024-bin histogram), the truth
its population value on the same bins, 1000 windows per design. Logit interval:
``expit(logit(ap) ± z / √(P·ap·(1 − ap)))``, ``P`` the window's positives. The bootstrap
(``BootstrapLabel``, 200 replicates, percentile interval moved onto the fine metric) is run
on the designs named in ``BOOT``.

    PYTHONPATH=$PWD .venv/bin/python bench/pr_auc_logit_coverage.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import BootstrapLabel, average_precision, bootstrap_interval

BINS, WINDOWS, Z = 1024, 1000, float(stats.norm.ppf(0.975))
BOOT = {(0.3, 1000, 1.0), (0.3, 1000, 2.0), (0.1, 200, 1.0)}


def design(prev: float, n: int, mu: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    edges = np.arange(BINS + 1) / BINS
    x_edges = stats.norm.ppf(edges) * 2 + mu / 2  # score = Φ((x − mu/2)/2)
    p_pos = np.diff(stats.norm.cdf(x_edges - mu))
    p_neg = np.diff(stats.norm.cdf(x_edges))
    truth = float(average_precision(((1 - prev) * p_neg)[None], (prev * p_pos)[None])[0])
    n_pos = rng.binomial(n, prev, WINDOWS)
    pos = np.array([rng.multinomial(k, p_pos) for k in n_pos])
    neg = np.array([rng.multinomial(n - k, p_neg) for k in n_pos])
    ap = average_precision(neg, pos)
    with np.errstate(all="ignore"):
        eta, tau = np.log(ap / (1 - ap)), 1 / np.sqrt(pos.sum(axis=1) * ap * (1 - ap))
        lo, hi = 1 / (1 + np.exp(-(eta - Z * tau))), 1 / (1 + np.exp(-(eta + Z * tau)))
    line = (f"prevalence {prev:.1f}  n {n:5d}  mu {mu:.1f}  truth {truth:.3f}  "
            f"logit {np.mean((lo <= truth) & (truth <= hi)):.3f}")
    if (prev, n, mu) in BOOT:
        line += f"  bootstrap {boot_coverage(pos, neg, ap, truth, rng):.3f}"
    return line


def boot_coverage(pos: np.ndarray, neg: np.ndarray, ap: np.ndarray, truth: float,
                  rng: np.random.Generator) -> float:
    """Records of every window rebuilt from its histogram (scores at bin centres, fresh
    keys), the bootstrap run over all windows in one update."""
    centres = (np.arange(BINS) + 0.5) / BINS
    s, y, starts = [], [], [0]
    for p, q in zip(pos, neg, strict=True):
        s += [np.repeat(centres, p), np.repeat(centres, q)]
        y += [np.ones(p.sum()), np.zeros(q.sum())]
        starts.append(starts[-1] + p.sum() + q.sum())
    s, y = np.concatenate(s), np.concatenate(y)
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(s.size, np.int8),
                        key=rng.integers(0, 2**63, s.size).astype(np.uint64))
    accs = [BootstrapLabel("binary", ("pr_auc",), 200) for _ in pos]
    BootstrapLabel.update_many(cols, [(a, np.arange(starts[i], starts[i + 1]))
                                      for i, a in enumerate(accs)])
    bounds = np.array([bootstrap_interval(a.replicates_of()["pr_auc"], float(v), 0.95)
                       for a, v in zip(accs, ap, strict=True)])
    return float(np.mean((bounds[:, 0] <= truth) & (truth <= bounds[:, 1])))


def main() -> None:
    for prev in (0.1, 0.3, 0.5):
        for n in (200, 1000, 5000):
            for mu in (1.0, 2.0):
                print(design(prev, n, mu, int(prev * 100 + n + mu * 7)), flush=True)


if __name__ == "__main__":
    main()
