"""A small, safe predicate language for ``where:`` slices — parsed, never ``eval``-ed.

Grammar (keywords are case-insensitive)::

    expr       = and_expr { "or" and_expr }
    and_expr   = not_expr { "and" not_expr }
    not_expr   = "not" not_expr | "(" expr ")" | test
    test       = feature op literal | literal op feature
               | feature ["not"] "in" "(" literal { "," literal } [","] ")"
               | string ["not"] "in" "tags"
               | feature "is" ["not"] "null"
               | feature ["not"] "between" literal "and" literal
    op         = "==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    feature    = name { "." name } | "`" any text "`"
    literal    = number | string | "true" | "false" | "null"

Nesting (``not`` and parentheses) is at most :data:`MAX_DEPTH` deep; deeper is a syntax error
at the token that goes over, so parsing, evaluation and printing never recurse without bound.

Evaluation is vectorised over a batch (:class:`slices.assign.SliceableBatch`) and two-valued: a test
against a missing value (NaN / None / absent feature) is False — ``x != 1``, ``x not in (…)``
and ``x not between …`` included — and ``not`` simply negates, so ``not (x == 1)`` is True
for a missing ``x``. Only ``is null`` / ``is not null`` look at missingness.

>>> import numpy as np
>>> class B:
...     def __init__(self, **cols): self.cols = cols
...     def __len__(self): return 3
...     def column(self, name): return self.cols.get(name)
...     def has_tag(self, tag): return np.array([True, False, True])
>>> e = parse_predicate('amount > 500 and country in ("US", "CA") and "new_user" in tags')
>>> sorted(e.features()), sorted(e.tags())
(['amount', 'country'], ['new_user'])
>>> b = B(amount=np.array([600.0, 700.0, np.nan]), country=np.array(["US", "CA", "US"], object))
>>> evaluate(e, b).tolist()
[True, False, False]
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from slices.codes import factorize, isna
from slices.errors import PredicateSyntaxError

Literal = str | float | bool | None
ORDERING = ("<", "<=", ">", ">=")
OPERATORS = ("==", "!=", *ORDERING)
TAGS = "tags"
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false", "between"}
MAX_DEPTH = 50  # nested 'not' / '(' in one predicate
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


class _Batch(Protocol):  # structural twin of slices.assign.SliceableBatch (here to avoid a cycle)
    def __len__(self) -> int: ...

    def column(self, name: str) -> np.ndarray | None: ...

    def has_tag(self, tag: str) -> np.ndarray: ...


# ---------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "number", "string", "keyword", "op", "(", ")", ",", "end"
    value: Any
    offset: int
    text: str

    def describe(self) -> str:
        return "end of predicate" if self.kind == "end" else f"token {self.text!r}"


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("==", "!=", "<>", "<=", ">=", "<", ">", "=")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"', "`": "`"}


def tokenize(text: str) -> list[Token]:
    """Split a predicate into tokens; raises :class:`PredicateSyntaxError` with the offset."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(ch, ch, i, ch))
            i += 1
        elif ch in "'\"`":
            value, end = _quoted(text, i)
            kind = "name" if ch == "`" else "string"
            tokens.append(Token(kind, value, i, text[i:end]))
            i = end
        elif ch.isdigit() or (ch in "+-." and _NUMBER.match(text, i)):
            match = _NUMBER.match(text, i)
            if match is None:
                raise PredicateSyntaxError(f"unexpected character {ch!r}", i)
            end = match.end()
            if end < n and (text[end].isalnum() or text[end] == "_"):
                raise PredicateSyntaxError(f"invalid number {text[i:end + 1]!r}", i)
            tokens.append(Token("number", float(match.group()), i, match.group()))
            i = end
        elif ch.isalpha() or ch == "_":
            match = _NAME.match(text, i)
            assert match is not None
            word = match.group()
            if word.lower() in _KEYWORDS:
                tokens.append(Token("keyword", word.lower(), i, word))
            else:
                tokens.append(Token("name", word, i, word))
            i = match.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise PredicateSyntaxError(f"unexpected character {ch!r}", i)
            canon = {"=": "==", "<>": "!="}.get(op, op)
            tokens.append(Token("op", canon, i, op))
            i += len(op)
    tokens.append(Token("end", None, n, ""))
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        elif ch == quote:
            if quote == "`" and not out:
                raise PredicateSyntaxError("empty backquoted name", start)
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    what = "backquoted name" if quote == "`" else "string"
    raise PredicateSyntaxError(f"unterminated {what}", start)


# ---------------------------------------------------------------------------------- AST


class Expr:
    """A parsed predicate. Nodes are frozen dataclasses; ``offset`` (not compared) locates a
    node in the source text for error messages."""

    def features(self) -> set[str]:
        """Names of the features the predicate reads."""
        return {n.feature for n in self.walk() if hasattr(n, "feature")}

    def tags(self) -> set[str]:
        """Tags the predicate tests with ``"tag" in tags``."""
        return {n.tag for n in self.walk() if isinstance(n, HasTag)}

    def walk(self) -> Iterator[Expr]:
        """This node and every node below it, depth first."""
        yield self
        for child in getattr(self, "items", ()):
            yield from child.walk()
        if isinstance(self, Not):
            yield from self.item.walk()

    def mask(self, batch: _Batch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Or(Expr):
    items: tuple[Expr, ...]

    def mask(self, batch: _Batch) -> np.ndarray:
        return np.logical_or.reduce([i.mask(batch) for i in self.items])

    def __str__(self) -> str:
        return " or ".join(_wrap(i, Or) for i in self.items)


@dataclass(frozen=True)
class And(Expr):
    items: tuple[Expr, ...]

    def mask(self, batch: _Batch) -> np.ndarray:
        return np.logical_and.reduce([i.mask(batch) for i in self.items])

    def __str__(self) -> str:
        return " and ".join(_wrap(i, And, Or) for i in self.items)


@dataclass(frozen=True)
class Not(Expr):
    item: Expr

    def mask(self, batch: _Batch) -> np.ndarray:
        return ~self.item.mask(batch)

    def __str__(self) -> str:
        return "not " + _wrap(self.item, And, Or)


@dataclass(frozen=True)
class Compare(Expr):
    """``feature op value``; a missing feature value never matches."""

    feature: str
    op: str
    value: Literal
    offset: int = field(default=0, compare=False)

    def mask(self, batch: _Batch) -> np.ndarray:
        col = batch.column(self.feature)
        if col is None:
            return np.zeros(len(batch), dtype=bool)
        if _is_numeric(col):
            return _compare_numeric(np.asarray(col, np.float64), self.op, self.value)
        return _per_unique(col, lambda u: _compare_scalar(u, self.op, self.value))

    def __str__(self) -> str:
        return f"{_name(self.feature)} {self.op} {_lit(self.value)}"


@dataclass(frozen=True)
class InSet(Expr):
    """``feature in (v1, v2, …)``; ``negate`` for ``not in`` (missing matches neither)."""

    feature: str
    values: tuple[Literal, ...]
    negate: bool = False
    offset: int = field(default=0, compare=False)

    def mask(self, batch: _Batch) -> np.ndarray:
        col = batch.column(self.feature)
        if col is None:
            return np.zeros(len(batch), dtype=bool)
        if _is_numeric(col):
            x = np.asarray(col, np.float64)
            nums = [v for v in (_as_number(v) for v in self.values) if v is not None]
            hit = np.isin(x, np.array(nums, np.float64))
            return (~hit & ~np.isnan(x)) if self.negate else hit
        keys = {_canon(v) for v in self.values}
        return _per_unique(col, lambda u: (_canon(u) in keys) != self.negate)

    def __str__(self) -> str:
        inner = ", ".join(_lit(v) for v in self.values)
        return f"{_name(self.feature)} {'not in' if self.negate else 'in'} ({inner})"


@dataclass(frozen=True)
class HasTag(Expr):
    """``"tag" in tags`` / ``"tag" not in tags``."""

    tag: str
    negate: bool = False
    offset: int = field(default=0, compare=False)

    def mask(self, batch: _Batch) -> np.ndarray:
        hit = np.asarray(batch.has_tag(self.tag), dtype=bool)
        return ~hit if self.negate else hit

    def __str__(self) -> str:
        return f"{_lit(self.tag)} {'not in' if self.negate else 'in'} tags"


@dataclass(frozen=True)
class IsNull(Expr):
    """``feature is null`` (missing: NaN, None or absent) / ``is not null``."""

    feature: str
    negate: bool = False
    offset: int = field(default=0, compare=False)

    def mask(self, batch: _Batch) -> np.ndarray:
        col = batch.column(self.feature)
        missing = np.ones(len(batch), bool) if col is None else _missing(col)
        return ~missing if self.negate else missing

    def __str__(self) -> str:
        return f"{_name(self.feature)} is {'not ' if self.negate else ''}null"


@dataclass(frozen=True)
class Between(Expr):
    """``feature between lo and hi`` — inclusive, ``lo <= x <= hi``."""

    feature: str
    low: Literal
    high: Literal
    negate: bool = False
    offset: int = field(default=0, compare=False)

    def mask(self, batch: _Batch) -> np.ndarray:
        inside = And((Compare(self.feature, ">=", self.low),
                      Compare(self.feature, "<=", self.high))).mask(batch)
        if not self.negate:
            return inside
        return ~inside & IsNull(self.feature, negate=True).mask(batch)

    def __str__(self) -> str:
        word = "not between" if self.negate else "between"
        return f"{_name(self.feature)} {word} {_lit(self.low)} and {_lit(self.high)}"


def _wrap(node: Expr, *loose: type) -> str:
    return f"({node})" if isinstance(node, loose) else str(node)


def _name(feature: str) -> str:
    if _NAME.fullmatch(feature) and not set(feature.lower().split(".")) & (_KEYWORDS | {TAGS}):
        return feature
    return "`" + feature.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _lit(value: Literal) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _canon(value) or "null"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------- parser


def parse_predicate(text: str) -> Expr:
    """Parse ``text`` into an :class:`Expr`; raises :class:`PredicateSyntaxError`."""
    if not isinstance(text, str):
        raise PredicateSyntaxError(f"a predicate must be a string; got {type(text).__name__}")
    tokens = tokenize(text)
    if tokens[0].kind == "end":
        raise PredicateSyntaxError("empty predicate", 0)
    parser = _Parser(tokens)
    expr = parser.or_expr()
    tok = parser.peek()
    if tok.kind != "end":
        raise PredicateSyntaxError(f"unexpected {tok.describe()}", tok.offset)
    return expr


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def accept(self, kind: str, value: Any = None) -> Token | None:
        tok = self.peek()
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def fail(self, expected: str, tok: Token | None = None) -> PredicateSyntaxError:
        tok = tok or self.peek()
        if tok.kind == "end":
            return PredicateSyntaxError(f"{expected}, but the predicate ended", tok.offset)
        return PredicateSyntaxError(f"{expected}, got {tok.text!r}", tok.offset)

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.accept("keyword", "or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.accept("keyword", "and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Expr:
        tok = self.peek()
        if tok.kind == "(" or (tok.kind == "keyword" and tok.value == "not"):
            if self.depth >= MAX_DEPTH:
                raise PredicateSyntaxError(f"predicate nested too deeply (more than "
                                           f"{MAX_DEPTH} levels of 'not' and parentheses)",
                                           tok.offset)
            self.depth += 1
            try:
                return self.nested()
            finally:
                self.depth -= 1
        return self.test()

    def nested(self) -> Expr:
        if self.accept("keyword", "not"):
            return Not(self.not_expr())
        self.accept("(")
        inner = self.or_expr()
        if not self.accept(")"):
            raise self.fail("expected ')' to close '('")
        return inner

    def test(self) -> Expr:
        tok = self.peek()
        if tok.kind == "name":
            return self.feature_test()
        if self._is_literal(tok):
            return self.literal_test()
        if tok.kind == "end":
            raise PredicateSyntaxError("unexpected end of predicate", tok.offset)
        raise PredicateSyntaxError(f"unexpected {tok.describe()}", tok.offset)

    def feature_test(self) -> Expr:
        tok = self.next()
        feature, offset = tok.value, tok.offset
        if feature == TAGS and tok.text == TAGS:
            raise PredicateSyntaxError(
                "'tags' is the record's tag set; test it with '\"tag\" in tags' "
                "(write `tags` for a feature named tags)", offset)
        nxt = self.peek()
        if nxt.kind == "op":
            self.next()
            value = self.literal(f"expected a literal after {nxt.text!r}")
            return _compare(feature, nxt.value, value, offset)
        if self.accept("keyword", "is"):
            negate = self.accept("keyword", "not") is not None
            if not self.accept("keyword", "null"):
                raise self.fail("expected 'null' after 'is'" + (" not" if negate else ""))
            return IsNull(feature, negate, offset)
        negate = self.accept("keyword", "not") is not None
        if self.accept("keyword", "in"):
            return InSet(feature, self.literal_list(), negate, offset)
        if self.accept("keyword", "between"):
            low = self.literal("expected a literal after 'between'")
            if not self.accept("keyword", "and"):
                raise self.fail("expected 'and' in 'between … and …'")
            high = self.literal("expected a literal after 'and'")
            return Between(feature, low, high, negate, offset)
        expected = "'in' or 'between' after 'not'" if negate else (
            "a comparison operator, 'in', 'is' or 'between' after the feature name")
        raise self.fail(f"expected {expected}")

    def literal_test(self) -> Expr:
        tok = self.peek()
        value = self.literal("expected a literal")
        nxt = self.peek()
        if nxt.kind == "op":
            self.next()
            name = self.accept("name")
            if name is None:
                raise self.fail(f"expected a feature name after {nxt.text!r}")
            return _compare(name.value, _FLIP[nxt.value], value, tok.offset)
        negate = self.accept("keyword", "not") is not None
        if self.accept("keyword", "in"):
            target = self.accept("name")
            if target is None or target.text != TAGS:
                raise self.fail("expected 'tags' after 'in' (a literal can only be tested "
                                "against the tag set)", target)
            if not isinstance(value, str):
                raise PredicateSyntaxError("a tag must be a string", tok.offset)
            return HasTag(value, negate, tok.offset)
        raise self.fail("expected a comparison operator or 'in tags' after the literal")

    def literal_list(self) -> tuple[Literal, ...]:
        if not self.accept("("):
            raise self.fail("expected '(' after 'in'")
        values = [self.list_item("expected a literal after 'in'")]
        while self.accept(","):
            if self.peek().kind == ")":
                break
            values.append(self.list_item("expected a literal after ','"))
        if not self.accept(")"):
            raise self.fail("expected ',' or ')' in the list after 'in'")
        return tuple(values)

    def list_item(self, expected: str) -> Literal:
        tok = self.peek()
        value = self.literal(expected)
        if value is None:
            raise PredicateSyntaxError("null cannot be listed after 'in'; use 'is null'",
                                       tok.offset)
        return value

    @staticmethod
    def _is_literal(tok: Token) -> bool:
        return tok.kind in ("number", "string") or (
            tok.kind == "keyword" and tok.value in ("true", "false", "null"))

    def literal(self, expected: str) -> Literal:
        tok = self.peek()
        if not self._is_literal(tok):
            raise self.fail(expected)
        self.next()
        if tok.kind == "keyword":
            return {"true": True, "false": False, "null": None}[tok.value]
        return tok.value


def _compare(feature: str, op: str, value: Literal, offset: int) -> Expr:
    if value is None:
        if op in ORDERING:
            raise PredicateSyntaxError(f"cannot order against null with {op!r}; "
                                       f"use 'is null' / 'is not null'", offset)
        return IsNull(feature, negate=(op == "!="), offset=offset)
    return Compare(feature, op, value, offset)


# ---------------------------------------------------------------------------------- evaluation


def evaluate(expr: Expr, batch: _Batch) -> np.ndarray:
    """Boolean mask (length ``len(batch)``) of the records for which ``expr`` holds."""
    out = np.asarray(expr.mask(batch), dtype=bool)
    if out.shape != (len(batch),):
        out = np.broadcast_to(out, (len(batch),)).copy()
    return out


def canon(value: Any) -> str | None:
    """The string a value is matched and rendered as: ``3.0`` → ``"3"``, ``True`` → ``"true"``,
    missing (None / NaN) → None."""
    return _canon(value)


def _canon(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if _is_pd_na(value):
        return None
    return str(value)


def _is_pd_na(value: Any) -> bool:
    """``value is pd.NA``, without importing pandas: a value can be pd.NA only once pandas
    is imported."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def _is_numeric(col: np.ndarray) -> bool:
    return col.dtype.kind in "fiub"


def _missing(col: np.ndarray) -> np.ndarray:
    if _is_numeric(col):
        return np.isnan(np.asarray(col, np.float64))
    return np.asarray(isna(col), dtype=bool)  # per distinct value (slices.codes)


def _as_number(value: Literal) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare_numeric(x: np.ndarray, op: str, value: Literal) -> np.ndarray:
    v = _as_number(value)
    if v is None:  # a non-numeric string against a numeric column
        return ~np.isnan(x) if op == "!=" else np.zeros(x.shape, bool)
    with np.errstate(invalid="ignore"):
        out = {"==": x == v, "!=": x != v, "<": x < v, "<=": x <= v, ">": x > v,
               ">=": x >= v}[op]
    return out & ~np.isnan(x) if op == "!=" else out


def _compare_scalar(u: Any, op: str, value: Literal) -> bool:
    """One distinct categorical value against a literal (missing values never reach here)."""
    if op in ("==", "!="):
        return (_canon(u) == _canon(value)) == (op == "==")
    if isinstance(value, str):
        left: Any = str(u)
    else:
        left = _as_number(u) if isinstance(u, str) else (
            float(u) if isinstance(u, int | float | np.number) else None)
        if left is None:
            return False
        value = float(value)
    return {"<": left < value, "<=": left <= value, ">": left > value, ">=": left >= value}[op]


def _per_unique(col: np.ndarray, test: Any) -> np.ndarray:
    """Apply ``test`` once per distinct non-missing value and spread it back (missing → False)."""
    codes, uniques = factorize(np.asarray(col, dtype=object), use_na_sentinel=True)
    if len(uniques) == 0:
        return np.zeros(codes.shape, bool)
    hits = np.fromiter((bool(test(u)) for u in uniques), dtype=bool, count=len(uniques))
    return np.append(hits, False)[codes]
