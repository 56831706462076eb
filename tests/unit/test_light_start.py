"""A light process (issue 13): the run path loads River only when a concept detector is
configured, and never Numba; start-up, up to the first chunk of records, loads neither pandas
nor scipy (nor the report's and notifiers' libraries), which are deferred to first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "llvmlite", "river", "sklearn")
# not needed before the first record is read: pandas (the first batch imports it), scipy (a
# window's close), and what only reports, notifiers or pushes use
LATER = ("pandas", "scipy", "river", "sklearn", "numba", "plotly", "rich", "requests", "jinja2",
         "pyarrow.parquet", "pyarrow.csv")

PROBE = f"""
import json, sys
from monitor.runtime.daemon import Daemon
at_first_chunk = []
decode = Daemon.decode  # the first chunk's decoding (ahead, on the reader's thread, or not)
def first(self, chunk):
    if not at_first_chunk:
        at_first_chunk.append(sorted(m for m in {LATER!r} if m in sys.modules))
    return decode(self, chunk)
Daemon.decode = first
from monitor.cli import main
code = main(sys.argv[1:])
print("LOADED", json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules),
                            at_first_chunk]))
"""


def probe_run(spec: Path, data: Path) -> tuple[list[str], list[str]]:
    """The heavy modules a `slicewatch run` of ``spec`` over ``data`` imported (:data:`HEAVY`),
    and those of :data:`LATER` it had imported when the first chunk of records reached the
    daemon, in a fresh interpreter (no HTTP server, no close-worker child sharing its
    modules)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, "run", "-c", str(spec), "-i", str(data),
                           "--listen", "", "-q"], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED")]
    assert line, proc.stdout + proc.stderr
    code, names, at_first_chunk = json.loads(line[-1].removeprefix("LOADED "))
    assert code == 0, proc.stdout + proc.stderr
    assert len(at_first_chunk) == 1, "no chunk reached the daemon"
    return names, at_first_chunk[0]


def fraud_spec(tmp_path: Path, concept: bool) -> Path:
    text = (REPO / "configs" / "fraud.yaml").read_text(encoding="utf-8")
    text = text.replace("../examples/", f"{REPO}/examples/")
    if not concept:
        lines = [x for x in text.splitlines() if "concept: {detector" not in x]
        assert len(lines) < len(text.splitlines()), "fraud.yaml has no concept line any more"
        text = "\n".join(lines) + "\n"
    spec = tmp_path / "fraud.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


@pytest.fixture(scope="module")
def fraud_probe(tmp_path_factory):
    """``probe_run`` of the fraud example with (True) or without (False) its concept
    detector, each run once for the module (the same child answers several tests)."""
    done: dict[bool, tuple[list[str], list[str]]] = {}

    def probe(concept: bool) -> tuple[list[str], list[str]]:
        if concept not in done:
            spec = fraud_spec(tmp_path_factory.mktemp(f"fraud-{concept}"), concept)
            done[concept] = probe_run(spec, REPO / "examples" / "fraud.jsonl")
        return done[concept]

    return probe


@pytest.mark.parametrize("concept", [False, True])
def test_river_loads_only_with_a_concept_detector_and_numba_never(fraud_probe, concept):
    loaded, _ = fraud_probe(concept)
    assert "numba" not in loaded and "llvmlite" not in loaded
    assert ("river" in loaded) == concept



PLAIN = """\
version: 1
source: {{type: file, path: {data}}}
models:
  - name: fraud
    task: binary
    window: 5m
    metrics: [count, failure_rate, score_mean, positive_rate, accuracy, roc_auc, log_loss]
    features: {{amount: numeric, account_age_days: numeric, device: categorical}}
    slices:
      - overall: true
      - feature_keys: [device]
      - buckets: {{amount: [0, 20, 100, 500]}}
      - name: big_ios
        where: 'amount > 500 and device == "ios"'
"""


def plain_spec(tmp_path: Path) -> Path:
    """A plain JSONL spec: metrics and slices, no drift, no concept detector."""
    data = REPO / "examples" / "fraud.jsonl"
    spec = tmp_path / "plain.yaml"
    spec.write_text(PLAIN.format(data=data), encoding="utf-8")
    return spec


def test_start_up_of_a_plain_jsonl_spec_imports_no_pandas_scipy_or_river(tmp_path):
    """The first record is read before pandas, scipy or River are imported; River and Numba
    never are."""
    loaded, at_first_chunk = probe_run(plain_spec(tmp_path), REPO / "examples" / "fraud.jsonl")
    assert at_first_chunk == []
    assert loaded == []


def test_start_up_with_drift_defers_pandas_and_scipy_too(fraud_probe):
    """Drift per slice against a profile: the profile is loaded at start, its tests' scipy
    comes at a window's close. (A concept detector is built at start, so that a bad one
    fails there: River, and the pandas and scipy it imports, come with it.)"""
    _, at_first_chunk = fraud_probe(False)
    assert at_first_chunk == []


def test_constants_written_out_equal_the_libraries():
    """The values computed without pandas or scipy at import equal the libraries' own."""
    import pandas as pd
    from scipy.stats import poisson

    from monitor.core.metrics.bootstrap import _THRESHOLDS
    from monitor.ingest import csvrows
    from monitor.ingest.decode import MAX_TIME, MIN_TIME

    assert pd.Timestamp.min.value / 1e9 == MIN_TIME
    assert pd.Timestamp.max.value / 1e9 == MAX_TIME
    expected = np.round(poisson.cdf(np.arange(20), 1.0) * 2.0 ** 32).astype(np.uint64)
    assert _THRESHOLDS.dtype == expected.dtype and (expected == _THRESHOLDS).all()
    assert issubclass(pd.errors.ParserError, csvrows._PARSE_ERRORS)


def test_a_lazy_module_imports_at_first_attribute_read():
    from slices.lazy import lazy_module

    name = "xml.dom.minidom"
    was = sys.modules.pop(name, None)
    try:
        m = lazy_module(name)
        assert name not in sys.modules and "not imported yet" in repr(m)
        assert m.parseString("<a/>").documentElement.tagName == "a"
        assert name in sys.modules and "(imported)" in repr(m)
        # kept on the stand-in: later reads are plain lookups, not __getattr__ calls
        assert vars(m)["parseString"] is sys.modules[name].parseString
    finally:
        if was is not None:
            sys.modules[name] = was


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("3", "3")])
def test_the_cli_runs_blas_single_threaded_unless_told(preset, expected):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    code = ("import os; from monitor.cli import single_threaded_blas; single_threaded_blas(); "
            "print(os.environ['OPENBLAS_NUM_THREADS'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == expected, proc.stderr


def test_the_allocator_setting_is_harmless_where_it_applies_or_not():
    from monitor.cli import keep_batch_memory

    keep_batch_memory()  # glibc: mallopt; elsewhere: nothing
    assert np.ones((10_000, 20)).sum() == 200_000



DRIFT_JOB = """
import json, sys
from monitor.cli import main
d = sys.argv[1]
codes = [main(["baseline", "build", "-c", f"{d}/spec.yaml", "--data", f"{d}/ref.parquet",
               "-o", f"{d}/p.json", "-q"])]
built = "pandas" in sys.modules
codes.append(main(["run", "-c", f"{d}/spec.yaml", "--listen", "", "-q",
                   "--results", f"{d}/r.jsonl"]))
print("LOADED", json.dumps([codes, built, "pandas" in sys.modules]))
"""


def test_a_profile_build_and_a_parquet_replay_of_a_plain_spec_never_import_pandas(tmp_path):
    """pyarrow's conversions import pandas (``to_numpy``, ``pa.array``): the build and the
    replay read Arrow buffers themselves (monitor/ingest/arrow_numpy.py) and code numbers
    without it — ≈ 36 MiB and ≈ 0.4 s less a process (#13 peers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for name, n in (("ref", 3000), ("cur", 5000)):
        x = rng.normal(size=n)
        x[::17] = np.nan
        c = rng.choice(np.array(["US", "CA", "DE", None], object), n).tolist()
        pq.write_table(pa.table({"model": ["m"] * n, "timestamp": 1.78e9 + np.arange(n) * 30.0,
                                 "prediction.score": rng.random(n), "features.x": x,
                                 "features.k": rng.integers(0, 5, n), "features.c": c}),
                       tmp_path / f"{name}.parquet", row_group_size=1000)
    (tmp_path / "spec.yaml").write_text(f"""version: 1
source: {{type: file, path: {tmp_path}/cur.parquet}}
models:
  - name: m
    task: binary
    window: 1d
    metrics: [count]
    features: {{x: numeric, k: numeric, c: categorical}}
    slices: [{{overall: true}}]
    drift: {{profile: {tmp_path}/p.json, multivariate: true}}
""", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", DRIFT_JOB, str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED")]
    assert line, proc.stdout + proc.stderr
    codes, after_build, after_replay = json.loads(line[-1].removeprefix("LOADED "))
    assert codes == [0, 0]
    results = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    tested = {d["feature"] for r in results for d in r.get("extra", {}).get("drift", [])}
    assert {"x", "k", "c"} <= tested  # the replay compared every feature with the profile
    assert (after_build, after_replay) == (False, False)
