"""Invalid specs: every problem reported, each as ``file:line:column: path: message``."""

from __future__ import annotations

import textwrap

import pytest

from slices import vocab
from slices.errors import SpecError
from slices.load import load_spec, load_spec_text

HEAD = "models:\n  - name: fraud\n    task: binary\n"


def problems(text: str, file: str = "s.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(textwrap.dedent(text), file)
    return [str(p) for p in info.value.problems]


def model(body: str, features: bool = True) -> str:
    """A one-model spec with ``body`` appended (indented as model keys)."""
    feats = ("    features:\n      amount: numeric\n      country: categorical\n"
             if features else "")
    return HEAD + feats + textwrap.indent(textwrap.dedent(body), "    ")


# (id, spec text, expected substring of the single problem, expected "path: " prefix)
CASES = [
    ("unknown-top-key", "modles: []\n" + HEAD, "unknown key 'modles'; did you mean 'models'?",
     "modles"),
    ("unknown-model-key", model("treshold: 0.3\n"), "unknown key 'treshold'; did you mean "
     "'threshold'?", "models[0].treshold"),
    ("threshold-range", model("threshold: 1.5\n"), "threshold must be a number in [0, 1]; "
     "got 1.5", "models[0].threshold"),
    ("threshold-type", model("threshold: high\n"), "threshold must be a number in [0, 1]; "
     "got 'high'", "models[0].threshold"),
    ("bad-duration", model("label_delay: 1 hour\n"), "label_delay must be a duration such as "
     "'30s', '5m' or '1h30m' (units ms, s, m, h, d, w); got '1 hour'", "models[0].label_delay"),
    ("negative-duration", model("allowed_lateness: -5\n"), "allowed_lateness must be a "
     "duration", "models[0].allowed_lateness"),
    ("bad-window", model("window: 5 minutes\n"), "window must be a duration such as '5m' or a "
     "record count such as '10000 records'; got '5 minutes'", "models[0].window"),
    ("zero-window", model("window: 0 records\n"), "window must be a duration", "models[0].window"),
    ("lateness-count-window", model("window: 100 records\nallowed_lateness: 1m\n"),
     "allowed_lateness applies to time windows only", "models[0].allowed_lateness"),
    ("unknown-metric", model("metrics: [acuracy]\n"), "unknown metric 'acuracy' (did you mean "
     f"'accuracy'?); valid for binary: {', '.join(vocab.METRICS_BY_TASK['binary'])}",
     "models[0].metrics[0]"),
    ("metric-wrong-task", model("metrics: [count, mae]\n"), "metric 'mae' is not defined for "
     "task 'binary' (only for regression); valid for binary: count,", "models[0].metrics[1]"),
    ("duplicate-metric", model("metrics: [f1, f1]\n"), "duplicate 'f1' in metrics",
     "models[0].metrics[1]"),
    ("unknown-task", "models:\n  - name: m\n    task: binnary\n", "task must be one of "
     "'binary', 'multiclass', 'regression'; got 'binnary' (did you mean 'binary'?)",
     "models[0].task"),
    ("missing-task", "models:\n  - name: m\n", "missing required key 'task'", "models[0]"),
    ("empty-models", "models: []\n", "models must be a non-empty list of models; got a list",
     "models"),
    ("no-models", "source: {type: stdin}\n", "missing required key 'models'", "<root>"),
    ("duplicate-model", HEAD + "  - name: fraud\n    task: regression\n",
     "duplicate model name 'fraud'; first defined at models[0]", "models[1].name"),
    ("predicate-syntax", model("slices:\n  - name: w\n    where: 'amount > 5 and )'\n"),
     "unexpected token ')'", "models[0].slices[0].where"),
    ("predicate-unterminated", model("slices:\n  - name: w\n    where: 'country == \"US'\n"),
     "unterminated string", "models[0].slices[0].where"),
    ("predicate-undeclared", model("slices:\n  - name: w\n    where: cuntry == 'US'\n"),
     "feature 'cuntry' is not declared in this model's features; did you mean 'country'?",
     "models[0].slices[0].where"),
    ("predicate-order-categorical", model("slices:\n  - name: w\n    where: country > 3\n"),
     "'>' needs a numeric feature; 'country' is declared categorical",
     "models[0].slices[0].where"),
    ("predicate-string-numeric", model("slices:\n  - name: w\n    where: amount > 'x'\n"),
     "'amount' is declared numeric; cannot compare it with the string 'x'",
     "models[0].slices[0].where"),
    ("where-needs-name", model("slices:\n  - where: amount > 1\n"), "a 'where' slice needs a "
     "'name'", "models[0].slices[0]"),
    ("duplicate-slice", model("slices:\n  - feature_keys: [country]\n  - overall: true\n"
                              "  - feature_keys: [country]\n    max_values: 5\n"),
     "duplicate slice name 'country'; first used by models[0].slices[0]",
     "models[0].slices[2]"),
    ("two-kinds", model("slices:\n  - feature_keys: [country]\n    tags: [a]\n"),
     "a slice has exactly one kind; got both 'feature_keys' and 'tags'",
     "models[0].slices[0].tags"),
    ("no-kind", model("slices:\n  - name: x\n    critical: true\n"), "a slice needs one of "
     "overall, feature_keys, feature_values, buckets, where, tags", "models[0].slices[0]"),
    ("buckets-not-increasing", model("slices:\n  - buckets: {amount: [0, 10, 10]}\n"),
     "bucket edges must be strictly increasing; 10 follows 10",
     "models[0].slices[0].buckets.amount[2]"),
    ("buckets-non-numeric", model("slices:\n  - buckets: {amount: [0, ten]}\n"),
     "bucket edges must be finite numbers; got 'ten'", "models[0].slices[0].buckets.amount[1]"),
    ("buckets-categorical", model("slices:\n  - buckets: {country: [0, 1]}\n"),
     "buckets need a numeric feature; 'country' is declared categorical",
     "models[0].slices[0].buckets.country"),
    ("feature-keys-undeclared", model("slices:\n  - feature_keys: [country, devise]\n"),
     "feature 'devise' is not declared in this model's features",
     "models[0].slices[0].feature_keys[1]"),
    ("max-values", model("slices:\n  - feature_keys: [country]\n    max_values: 0\n"),
     "max_values must be an integer >= 1; got 0", "models[0].slices[0].max_values"),
    ("min-size", model("slices:\n  - overall: true\n    min_size: -1\n"),
     "min_size must be an integer >= 0; got -1", "models[0].slices[0].min_size"),
    ("critical-type", model("slices:\n  - overall: true\n    critical: yes please\n"),
     "critical must be true or false; got 'yes please'", "models[0].slices[0].critical"),
    ("overall-false", model("slices:\n  - overall: false\n"), "overall must be true",
     "models[0].slices[0].overall"),
    ("drift-test", model("features:\n  x: {type: numeric, test: kss}\n", features=False),
     "test must be one of 'ks', 'ks_binned', 'chi2', 'psi', 'js', 'wasserstein', 'linf', "
     "'cohen_w', 'hellinger'; got 'kss' (did you mean 'ks'?)", "models[0].features.x.test"),
    ("feature-type", model("features:\n  x: numerical\n", features=False),
     "must be one of 'numeric', 'categorical'; got 'numerical' (did you mean 'numeric'?)",
     "models[0].features.x"),
    ("detector", model("drift:\n  concept: {detector: ADWINN}\n"), "detector must be one of "
     "'ADWIN', 'DDM', 'EDDM', 'HDDM_A', 'HDDM_W', 'PageHinkley', 'KSWIN'; got 'ADWINN' "
     "(did you mean 'ADWIN'?)", "models[0].drift.concept.detector"),
    ("fdr", model("drift:\n  fdr: 1.0\n"), "fdr must be a number in (0, 1); got 1.0",
     "models[0].drift.fdr"),
    ("drift-two-references", model("drift:\n  profile: p.json\n  rolling_windows: 3\n"),
     "give either 'profile' or 'rolling_windows'", "models[0].drift.rolling_windows"),
    ("drift-undeclared-feature", model("drift:\n  features: [amount, amont]\n"),
     "feature 'amont' is not declared", "models[0].drift.features[1]"),
    ("classes-on-binary", model("classes: [a, b]\n"), "'classes' applies to multiclass models "
     "only; this model's task is 'binary'", "models[0].classes"),
    ("source-type", "source: {type: fil}\n" + HEAD, "type must be one of 'file', 'stdin', "
     "'kafka'; got 'fil' (did you mean 'file'?)", "source.type"),
    ("batch-size", "source: {batch_size: 0}\n" + HEAD, "batch_size must be an integer >= 1; "
     "got 0", "source.batch_size"),
    ("listen", "server: {listen: 'localhost'}\n" + HEAD, "listen must be 'host:port'",
     "server.listen"),
    ("schema-path", "schema: {score: 'prediction..score'}\n" + HEAD, "score must be a dot path "
     "such as 'prediction.score'; got 'prediction..score'", "schema.score"),
    ("version", "version: 2\n" + HEAD, "version must be 1; got 2", "version"),
    ("duplicate-yaml-key", HEAD + "    task: regression\n", "duplicate key 'task'",
     "models[0].task"),
    ("yaml-syntax", "models: [\n", "invalid YAML", "<root>"),
    ("not-a-mapping", "- a\n- b\n", "a spec must be a mapping with a 'models' list; got a list",
     "<root>"),
]


@pytest.mark.parametrize(("text", "message", "path"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_invalid_spec_reports_one_problem(text: str, message: str, path: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert f": {path}: " in found[0]
    assert message in found[0]
    assert found[0].startswith("s.yaml:")


def test_at_least_forty_distinct_invalid_specs() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 40
    assert len({c[2] for c in CASES}) == len(CASES)


def test_exact_positions() -> None:
    text = textwrap.dedent("""\
        models:
          - name: fraud
            task: binary
            threshold: 1.5
            metrics: [count, acuracy]
            features: {amount: numeric, country: categorical}
            slices:
              - name: w
                where: 'amount > 500 and )'
              - name: v
                where: country in ("US", "CA") and amount > "x"
              - buckets:
                  amount: [0, 10, 5]
        """)
    found = problems(text, "fraud.yaml")
    assert found[0] == "fraud.yaml:4:16: models[0].threshold: threshold must be a number in " \
                       "[0, 1]; got 1.5"
    assert found[1].startswith("fraud.yaml:5:22: models[0].metrics[1]: unknown metric 'acuracy'")
    # the quoted scalar starts at column 16; ')' is at offset 17 inside it
    assert found[2] == "fraud.yaml:9:34: models[0].slices[0].where: unexpected token ')'"
    # plain scalar at column 16; the 'amount > "x"' test starts at offset 28
    assert found[3] == ("fraud.yaml:11:44: models[0].slices[1].where: 'amount' is declared "
                        "numeric; cannot compare it with the string 'x'")
    assert found[4] == ("fraud.yaml:13:27: models[0].slices[2].buckets.amount[2]: bucket edges "
                        "must be strictly increasing; 5 follows 10")
    assert len(found) == 5


def test_block_scalar_predicate_position() -> None:
    text = "models:\n  - name: m\n    task: binary\n    slices:\n      - name: w\n" \
           "        where: |\n          amount > 1 and\n            (country == 'US' or ]\n"
    (found,) = problems(text)
    assert found == "s.yaml:8:33: models[0].slices[0].where: unexpected character ']'"


def test_every_problem_reported_at_once_in_order() -> None:
    text = textwrap.dedent("""\
        version: 3
        sorce: {}
        models:
          - name: a
            task: binary
            threshold: -1
            window: soon
            slices:
              - feature_keys: [country]
                max_values: 0
              - name: x
                where: 'amount >'
          - name: a
            task: regresion
            metrics: [accuracy]
        """)
    found = problems(text)
    assert [f.split(": ")[1] for f in found] == [
        "version", "sorce", "models[0].threshold", "models[0].window",
        "models[0].slices[0].max_values", "models[0].slices[1].where", "models[1].name",
        "models[1].task",
    ]
    lines = [int(f.split(":")[1]) for f in found]
    assert lines == sorted(lines)
    assert "expected a literal after '>', but the predicate ended" in found[5]


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert str(info.value) == f"{path}:1:1: <root>: cannot read spec: No such file or directory"


def test_file_problems_name_the_file(tmp_path) -> None:
    path = tmp_path / "fraud.yaml"
    path.write_text(HEAD + "    window: 5x\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert str(info.value).startswith(f"{path}:4:13: models[0].window: window must be")

