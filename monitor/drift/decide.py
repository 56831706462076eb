"""Which test runs where, and the decision rule (details and rationale: docs/drift.md).

Default selection, by feature type and the window's non-missing count ``n``:

=============  ==========================  ====================================
type           ``n <= LARGE_N`` (10 000)   ``n > LARGE_N``
=============  ==========================  ====================================
numeric        ``ks`` (p-value), gate D    ``ks_binned`` (gate D_binned)
categorical    ``chi2`` (p-value), gate    ``chi2`` (p-value), gate Cohen's
               Cohen's ``w``               ``w``
=============  ==========================  ====================================

So the default effect size is "10 percentage points of CDF" (numeric, d ≈ 0.25 for a
normal shift) or Cohen's ``w`` ≥ 0.1 (categorical): a "small" effect on Cohen's scale both
ways (docs/analysis.md). A
feature's ``test:``, ``threshold:`` and ``min_samples:`` override (the threshold applies to
the chosen test's gate distance).

Decision rule per window: the p-values of all (feature, slice) tests that ran are adjusted
together with Benjamini–Hochberg (``scipy.stats.false_discovery_control``); a test with a
p-value declares ``drift`` iff ``adjusted <= fdr`` **and** ``distance >= threshold``; a pure
distance test declares ``drift`` iff ``distance >= threshold``. Fewer than ``min_samples``
non-missing values in the window or the reference → ``insufficient`` (no decision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.drift.errors import DriftError, DriftParamError
from monitor.drift.features import FeatureSummaries
from monitor.drift.statistics import TESTS, TestResult, get_test
from monitor.drift.summary import NumericSummary, Summary
from slices.spec import FeatureSpec, ModelSpec

stats = lazy_module("scipy.stats")  # Benjamini–Hochberg, at the first window close

LARGE_N = 10_000
DEFAULT_MIN_SAMPLES = 100

Status = Literal["drift", "ok", "insufficient"]


@dataclass(frozen=True)
class Choice:
    """The test to run on one feature, its gate distance, threshold and minimum sample."""

    test: str
    gate: str
    threshold: float
    min_samples: int


def feature_type(summary: Summary) -> str:
    return "numeric" if isinstance(summary, NumericSummary) else "categorical"


def select(ftype: str, n: int, override: FeatureSpec | None = None) -> Choice:
    """The test for a ``ftype`` feature whose window has ``n`` non-missing values."""
    if override is not None and override.test is not None:
        test = get_test(override.test)
        if ftype not in test.types:
            raise DriftParamError(
                f"feature {override.name!r}: test {override.test!r} applies to "
                f"{'/'.join(sorted(test.types))} features, not {ftype}")
    elif ftype == "numeric":
        test = TESTS["ks"] if n <= LARGE_N else TESTS["ks_binned"]
    else:
        test = TESTS["chi2"]
    gate = TESTS[test.gate]
    threshold = gate.threshold
    min_samples = DEFAULT_MIN_SAMPLES
    if override is not None:
        if override.threshold is not None:
            if not (override.threshold >= 0):
                raise DriftParamError(f"feature {override.name!r}: threshold must be >= 0, "
                                      f"got {override.threshold}")
            threshold = float(override.threshold)
        if override.min_samples is not None:
            if override.min_samples < 1:
                raise DriftParamError(f"feature {override.name!r}: min_samples must be >= 1, "
                                      f"got {override.min_samples}")
            min_samples = int(override.min_samples)
    return Choice(test.name, gate.name, threshold, min_samples)


@dataclass(frozen=True)
class Decision:
    """One (model, slice, feature) drift decision of one window.

    ``statistic``/``pvalue`` come from ``test``; ``distance`` from ``gate`` (often the same
    test); ``adjusted_pvalue`` is the BH-adjusted p-value (None for distance-only tests and
    insufficient data). ``reference`` says which reference was used: ``slice``, ``overall``
    (the profile had no such slice) or ``rolling``.
    """

    model: str
    slice: str
    feature: str
    test: str
    gate: str
    statistic: float
    pvalue: float | None
    adjusted_pvalue: float | None
    distance: float
    threshold: float
    status: Status
    n_reference: int
    n_current: int
    reference: str = "overall"


def run_test(ref: Summary, cur: Summary, choice: Choice) -> tuple[TestResult, float]:
    """(result of ``choice.test``, gate distance)."""
    result = get_test(choice.test).compute(ref, cur)
    if choice.gate == choice.test:
        return result, result.distance
    return result, get_test(choice.gate).compute(ref, cur).distance


def pending(model: str, slice_key: str, feature: str, ref: Summary | None, cur: Summary,
            choice: Choice, reference: str = "overall") -> Decision:
    """Run the chosen test (or mark ``insufficient``); status is settled by :func:`decide`."""
    skipped = _insufficient(model, slice_key, feature, ref, cur, choice, reference)
    if skipped is not None:
        return skipped
    return _decision(model, slice_key, feature, ref, cur, choice, reference,
                     *run_test(ref, cur, choice))


def _insufficient(model: str, slice_key: str, feature: str, ref: Summary | None, cur: Summary,
                  choice: Choice, reference: str) -> Decision | None:
    n_ref = ref.present if ref is not None else 0
    n_cur = cur.present
    sample_ok = not (choice.test in ("ks", "wasserstein") or choice.gate in ("ks", "wasserstein")) \
        or (ref is not None and ref.sample.shape[0] > 0 and cur.sample.shape[0] > 0)
    # Wasserstein's scale: a reference whose variance is beyond float64 (values near 1e300)
    std_ok = "wasserstein" not in (choice.test, choice.gate) or ref is None \
        or not isinstance(ref, NumericSummary) or math.isfinite(ref.std) or not ref.n
    if ref is None or min(n_ref, n_cur) < choice.min_samples or not sample_ok or not std_ok:
        return Decision(model, slice_key, feature, choice.test, choice.gate, math.nan, None,
                        None, math.nan, choice.threshold, "insufficient", n_ref, n_cur,
                        reference)
    return None


def _decision(model: str, slice_key: str, feature: str, ref: Summary, cur: Summary,
              choice: Choice, reference: str, result: TestResult, dist: float) -> Decision:
    return Decision(model, slice_key, feature, choice.test, choice.gate, result.statistic,
                    result.pvalue, None, dist, choice.threshold, "ok", ref.present, cur.present,
                    reference)


def decide(results: Sequence[Decision], fdr: float = 0.05) -> list[Decision]:
    """Settle statuses: BH across all p-values of the window, then the effect-size gate."""
    if not 0 < fdr < 1:
        raise DriftParamError(f"fdr must be in (0, 1), got {fdr}")
    tested = [i for i, d in enumerate(results)
              if d.status != "insufficient" and d.pvalue is not None]
    adjusted = np.asarray([], float)
    if tested:
        ps = np.asarray([results[i].pvalue for i in tested], dtype=np.float64)
        adjusted = stats.false_discovery_control(np.clip(ps, 0.0, 1.0), method="bh")
    adj_of = dict(zip(tested, adjusted.tolist(), strict=True))
    out = []
    for i, d in enumerate(results):
        if d.status == "insufficient":
            out.append(d)
            continue
        big = bool(d.distance >= d.threshold)  # NaN distance → not drift
        if i in adj_of:
            drift = adj_of[i] <= fdr and big
            out.append(replace(d, adjusted_pvalue=adj_of[i], status="drift" if drift else "ok"))
        else:
            out.append(replace(d, status="drift" if big else "ok"))
    return out


class Reference(Protocol):
    """A profile or rolling reference: the reference summaries for a slice and their scope."""

    def for_slice(self, key: str | None) -> tuple[FeatureSummaries, str] | None: ...


def evaluate_drift(reference: Reference, current_by_slice: Mapping[str, FeatureSummaries],
                   model_spec: ModelSpec) -> list[Decision]:
    """All drift decisions of one model's window: every summarised feature (and prediction,
    label) of every slice, tested against the reference and decided together (BH at
    ``model_spec.drift.fdr``)."""
    pend: list[Decision | None] = []
    jobs: list[tuple[int, str, str, Summary, Summary, Choice, str]] = []
    for slice_key, current in current_by_slice.items():
        found = reference.for_slice(slice_key)
        ref_sums, scope = found if found is not None else (None, "none")
        for name, cur in current.items():
            ref = ref_sums.summaries.get(name) if ref_sums is not None else None
            if ref is not None and not ref.same_bins(cur):
                raise DriftError(f"model {model_spec.name!r}, slice {slice_key!r}, feature "
                                 f"{name!r}: window summary and reference have different bins")
            choice = select(feature_type(cur), cur.present, model_spec.feature(name))
            skipped = _insufficient(model_spec.name, slice_key, name, ref, cur, choice, scope)
            pend.append(skipped)
            if skipped is None:
                jobs.append((len(pend) - 1, slice_key, name, ref, cur, choice, scope))
    # KS tests that are their own gate (most numeric tests) run batched; the rest one by one
    ks = [j for j in jobs if j[5].test == "ks" and j[5].gate == "ks"]
    ks_results = get_test("ks").compute_many([(j[3], j[4]) for j in ks]) if ks else []
    for (i, slice_key, name, ref, cur, choice, scope), res in zip(ks, ks_results, strict=True):
        pend[i] = _decision(model_spec.name, slice_key, name, ref, cur, choice, scope, res,
                            res.distance)
    for i, slice_key, name, ref, cur, choice, scope in jobs:
        if pend[i] is None:
            pend[i] = _decision(model_spec.name, slice_key, name, ref, cur, choice, scope,
                                *run_test(ref, cur, choice))
    return decide([d for d in pend if d is not None], model_spec.drift.fdr)
