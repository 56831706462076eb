"""The predicate grammar: parsing, precedence, errors with offsets, vectorised evaluation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from slices.errors import PredicateSyntaxError
from slices.predicate import (
    And,
    Between,
    Compare,
    HasTag,
    InSet,
    IsNull,
    Not,
    Or,
    evaluate,
    parse_predicate,
    tokenize,
)


class Batch:
    """Minimal :class:`slices.assign.SliceableBatch`: feature columns and a per-record tag set."""

    def __init__(self, n: int, tags: list[set[str]] | None = None, **cols: np.ndarray):
        self.n, self.cols, self.tag_sets = n, cols, tags or [set()] * n

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> np.ndarray | None:
        return self.cols.get(name)

    def has_tag(self, tag: str) -> np.ndarray:
        return np.array([tag in t for t in self.tag_sets], dtype=bool)


# ------------------------------------------------------------------------------ parsing

@pytest.mark.parametrize(("text", "expr"), [
    ("a > 1", Compare("a", ">", 1.0)),
    ("a = 'x'", Compare("a", "==", "x")),
    ("a <> -2.5e1", Compare("a", "!=", -25.0)),
    ("5 < a", Compare("a", ">", 5.0)),
    ('"US" == ctx.country', Compare("ctx.country", "==", "US")),
    ("`my feature` >= 3", Compare("my feature", ">=", 3.0)),
    ("`tags` == true", Compare("tags", "==", True)),
    ("a in (1, 'b', false,)", InSet("a", (1.0, "b", False))),
    ("a NOT IN ('x')", InSet("a", ("x",), negate=True)),
    ('"new_user" in tags', HasTag("new_user")),
    ("'x' not in tags", HasTag("x", negate=True)),
    ("a is null", IsNull("a")),
    ("a is not null", IsNull("a", negate=True)),
    ("a == null", IsNull("a")),
    ("a != null", IsNull("a", negate=True)),
    ("a between 1 and 5", Between("a", 1.0, 5.0)),
    ("a not between 1 and 5", Between("a", 1.0, 5.0, negate=True)),
    ("s == 'it\\'s'", Compare("s", "==", "it's")),
])
def test_parse_tests(text, expr) -> None:
    assert parse_predicate(text) == expr


def test_precedence_or_and_not() -> None:
    a, b, c = (Compare(x, "==", 1.0) for x in "abc")
    assert parse_predicate("a == 1 or b == 1 and c == 1") == Or((a, And((b, c))))
    assert parse_predicate("a == 1 and b == 1 or c == 1") == Or((And((a, b)), c))
    assert parse_predicate("(a == 1 or b == 1) and c == 1") == And((Or((a, b)), c))
    assert parse_predicate("not a == 1 and b == 1") == And((Not(a), b))
    assert parse_predicate("not (a == 1 and b == 1)") == Not(And((a, b)))
    assert parse_predicate("not not a == 1") == Not(Not(a))
    assert parse_predicate("a == 1 and b == 1 and c == 1") == And((a, b, c))
    assert parse_predicate("x between 1 and 2 and a == 1") == And((Between("x", 1.0, 2.0), a))


def test_features_and_tags() -> None:
    e = parse_predicate('amount > 500 and country in ("US", "CA") and "new_user" in tags '
                        'or not (ctx.x is null or "vip" not in tags)')
    assert e.features() == {"amount", "country", "ctx.x"}
    assert e.tags() == {"new_user", "vip"}


def test_keywords_case_insensitive_but_names_not() -> None:
    assert parse_predicate("A > 1 AND b IS NOT NULL") == And(
        (Compare("A", ">", 1.0), IsNull("b", negate=True)))


@pytest.mark.parametrize(("text", "message", "offset"), [
    ("amount > 500 and )", "unexpected token ')'", 17),
    ("a in ()", "expected a literal after 'in', got ')'", 6),
    ("a in 1", "expected '(' after 'in', got '1'", 5),
    ("a in (1 2)", "expected ',' or ')' in the list after 'in', got '2'", 8),
    ("country == \"US", "unterminated string", 11),
    ("`abc == 1", "unterminated backquoted name", 0),
    ("(a == 1", "expected ')' to close '(', but the predicate ended", 7),
    ("a ==", "expected a literal after '==', but the predicate ended", 4),
    ("a == b", "expected a literal after '==', got 'b'", 5),
    ("a", "expected a comparison operator, 'in', 'is' or 'between' after the feature name, "
          "but the predicate ended", 1),
    ("", "empty predicate", 0),
    ("   ", "empty predicate", 0),
    ("a > 1 $", "unexpected character '$'", 6),
    ("a == 1 b == 2", "unexpected token 'b'", 7),
    ("a > null", "cannot order against null with '>'; use 'is null' / 'is not null'", 0),
    ("a in (1, null)", "null cannot be listed after 'in'; use 'is null'", 9),
    ("tags == 'x'", "'tags' is the record's tag set", 0),
    ("'x' in (1, 2)", "expected 'tags' after 'in'", 7),
    ("1 in tags", "a tag must be a string", 0),
    ("a is 3", "expected 'null' after 'is', got '3'", 5),
    ("a between 1 or 2", "expected 'and' in 'between … and …', got 'or'", 12),
    ("a not == 1", "expected 'in' or 'between' after 'not', got '=='", 6),
    ("12abc > 1", "invalid number '12a'", 0),
    ("a > 1 and", "unexpected end of predicate", 9),
    ("and a > 1", "unexpected token 'and'", 0),
])
def test_syntax_errors_with_offsets(text, message, offset) -> None:
    with pytest.raises(PredicateSyntaxError) as info:
        parse_predicate(text)
    assert message in info.value.message
    assert info.value.offset == offset


def test_error_is_a_slicewatch_error() -> None:
    from slices.errors import SlicewatchError
    with pytest.raises(SlicewatchError):
        parse_predicate("a >")


def test_tokenize_offsets() -> None:
    toks = tokenize("a.b >= 'x y' or `c d` in (1)")
    assert [(t.kind, t.offset) for t in toks] == [
        ("name", 0), ("op", 4), ("string", 7), ("keyword", 13), ("name", 16), ("keyword", 22),
        ("(", 25), ("number", 26), (")", 27), ("end", 28)]


# ------------------------------------------------------------------------------ evaluation


def test_missing_values_two_valued() -> None:
    b = Batch(3, x=np.array([1.0, np.nan, 2.0]), c=np.array(["a", None, "b"], dtype=object))
    ev = lambda t: evaluate(parse_predicate(t), b).tolist()  # noqa: E731
    assert ev("x == 1") == [True, False, False]
    assert ev("x != 1") == [False, False, True]
    assert ev("not x == 1") == [False, True, True]
    assert ev("x not in (1)") == [False, False, True]
    assert ev("not x in (1)") == [False, True, True]
    assert ev("x not between 0 and 1.5") == [False, False, True]
    assert ev("x is null") == [False, True, False]
    assert ev("c != 'a'") == [False, False, True]
    assert ev("c is not null") == [True, False, True]
    assert ev("absent == 1") == [False, False, False]
    assert ev("absent != 1") == [False, False, False]
    assert ev("absent is null") == [True, True, True]


def test_categorical_matching_uses_canonical_strings() -> None:
    b = Batch(5, h=np.array([3, "3", 3.0, 3.5, True], dtype=object))
    assert evaluate(parse_predicate("h == 3"), b).tolist() == [True, True, True, False, False]
    assert evaluate(parse_predicate("h in ('3', true)"), b).tolist() == [True] * 3 + [False,
                                                                                      True]
    assert evaluate(parse_predicate("h > 3.2"), b).tolist() == [False] * 3 + [True, False]


def test_numeric_column_against_string_literal() -> None:
    b = Batch(2, x=np.array([1.0, np.nan]))
    assert evaluate(parse_predicate("x == 'US'"), b).tolist() == [False, False]
    assert evaluate(parse_predicate("x != 'US'"), b).tolist() == [True, False]
    assert evaluate(parse_predicate("x == '1'"), b).tolist() == [True, False]


def test_tags() -> None:
    b = Batch(3, tags=[{"a"}, {"a", "b"}, set()])
    assert evaluate(parse_predicate("'a' in tags and 'b' not in tags"), b).tolist() == [
        True, False, False]


def test_works_on_record_batch() -> None:
    from monitor.core.types import RecordBatch
    n = 4
    f = np.zeros(n)
    o = np.full(n, None, dtype=object)
    batch = RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f,
                        label=o, outcome=np.zeros(n, np.int8),
                        features={"amount": np.array([600.0, 10.0, 700.0, np.nan]),
                                  "country": np.array(["US", "US", "FR", "CA"], object)},
                        tag_names=("new_user",), tag_rows=np.array([0, 2, 3]),
                        tag_codes=np.array([0, 0, 0], np.int32))
    e = parse_predicate('amount > 500 and country in ("US", "CA") and "new_user" in tags')
    assert evaluate(e, batch).tolist() == [True, False, False, False]


# ---------------------------------- random expressions vs a plain-Python per-record reference

NUM = ("x", "y")
CAT = ("c",)
TAGS = ("t1", "t2")


def _num_atom(rng: random.Random) -> tuple[str, object]:
    f = rng.choice(NUM)
    kind = rng.randrange(5)
    if kind == 0:
        op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
        v = float(rng.randrange(-3, 4))
        py = {"==": lambda a: a == v, "!=": lambda a: a != v, "<": lambda a: a < v,
              "<=": lambda a: a <= v, ">": lambda a: a > v, ">=": lambda a: a >= v}[op]
        if rng.random() < 0.3:  # literal on the left, operator flipped by the parser
            flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            return f"{v:g} {flip} {f}", lambda r: not math.isnan(r[f]) and py(r[f])
        return f"{f} {op} {v:g}", lambda r: not math.isnan(r[f]) and py(r[f])
    if kind == 1:
        vals = rng.sample(range(-3, 4), rng.randrange(1, 4))
        neg = rng.random() < 0.5
        text = f"{f} {'not in' if neg else 'in'} ({', '.join(map(str, vals))})"
        return text, lambda r: not math.isnan(r[f]) and ((r[f] in vals) != neg)
    if kind == 2:
        neg = rng.random() < 0.5
        return (f"{f} is {'not ' if neg else ''}null", lambda r: math.isnan(r[f]) != neg)
    lo = rng.randrange(-3, 2)
    hi = lo + rng.randrange(0, 3)
    neg = rng.random() < 0.5
    text = f"{f} {'not between' if neg else 'between'} {lo} and {hi}"
    return text, lambda r: not math.isnan(r[f]) and ((lo <= r[f] <= hi) != neg)


def _other_atom(rng: random.Random) -> tuple[str, object]:
    if rng.random() < 0.5:
        t = rng.choice(TAGS)
        neg = rng.random() < 0.5
        return f"'{t}' {'not in' if neg else 'in'} tags", lambda r: (t in r["tags"]) != neg
    vals = rng.sample(["a", "b", "c", "d"], rng.randrange(1, 3))
    if rng.random() < 0.5:
        v = vals[0]
        op = rng.choice(["==", "!="])
        return (f"c {op} \"{v}\"",
                lambda r: r["c"] is not None and ((r["c"] == v) == (op == "==")))
    neg = rng.random() < 0.5
    text = f"c {'not in' if neg else 'in'} ({', '.join(repr(v) for v in vals)})"
    return text, lambda r: r["c"] is not None and ((r["c"] in vals) != neg)


def _expr(rng: random.Random, depth: int) -> tuple[str, object, int]:
    """(text, reference, precedence level: 0 or, 1 and, 2 not/atom) with minimal parentheses."""
    if depth == 0 or rng.random() < 0.3:
        text, fn = (_num_atom if rng.random() < 0.6 else _other_atom)(rng)
        return text, fn, 2
    kind = rng.randrange(3)
    if kind == 0:
        t, f, lvl = _expr(rng, depth - 1)
        t = f"({t})" if lvl < 2 or rng.random() < 0.2 else t
        return f"not {t}", lambda r: not f(r), 2
    level = kind - 1  # 0: or, 1: and
    parts = [_expr(rng, depth - 1) for _ in range(rng.randrange(2, 4))]
    texts = [f"({t})" if lvl < level or (lvl == level and rng.random() < 0.3) else t
             for t, _, lvl in parts]
    fns = [f for _, f, _ in parts]
    if level == 0:
        return " or ".join(texts), lambda r: any(f(r) for f in fns), 0
    return " and ".join(texts), lambda r: all(f(r) for f in fns), 1


def test_random_predicates_match_python_reference() -> None:
    data = np.random.default_rng(7)
    n = 300
    cols = {f: np.where(data.random(n) < 0.15, np.nan, data.integers(-3, 4, n).astype(float))
            for f in NUM}
    cat = np.array(data.choice(["a", "b", "c", "d"], n), dtype=object)
    cat[data.random(n) < 0.15] = None
    tag_sets = [{t for t in TAGS if data.random() < 0.4} for _ in range(n)]
    batch = Batch(n, tags=tag_sets, c=cat, **cols)
    records = [{"x": cols["x"][i], "y": cols["y"][i], "c": cat[i], "tags": tag_sets[i]}
               for i in range(n)]
    rng = random.Random(11)
    for _ in range(400):
        text, fn, _ = _expr(rng, 4)
        expr = parse_predicate(text)
        expected = np.array([fn(r) for r in records], dtype=bool)
        got = evaluate(expr, batch)
        assert got.dtype == bool and got.shape == (n,)
        np.testing.assert_array_equal(got, expected, err_msg=text)
        # rendering parses back to the same tree and evaluates the same
        assert parse_predicate(str(expr)) == expr, text


def test_evaluate_empty_batch() -> None:
    b = Batch(0, x=np.zeros(0), c=np.zeros(0, dtype=object))
    assert evaluate(parse_predicate("x > 1 or c == 'a' or 'q' in tags"), b).shape == (0,)
