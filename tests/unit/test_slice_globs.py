"""Slice patterns (#18.9): ``*`` stays within one ``key=value`` part; crosses match only
patterns of their own shape. The regex (used by Prometheus rules) and the alert engine agree
with a reference written from the definition: split into parts, then fnmatch part by part."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.generate.promql import glob_regex
from slices.alerting import RuleSpec
from slices.globs import slice_matches, slice_regex

LABELS = ["overall", "big_new_na", "neighbourhood=riverside", "neighbourhood=__other__",
          "neighbourhood=riverside,property_type=house", "property_type=house",
          "amount=[0,10)", "amount=(-inf,0)", "amount=[100,+inf)", "amount=__missing__",
          "amount=[0,10),country=US", "tag=new_user", "country=US,device=ios,os=17"]


def parts(text: str) -> list[str]:
    """The definition: a ',' starts a new part when the next chunk holds '='."""
    chunks = text.split(",")
    out = [chunks[0]]
    for chunk in chunks[1:]:
        if "=" in chunk:
            out.append(chunk)
        else:
            out[-1] += "," + chunk
    return out


def reference(patterns, label: str) -> bool:
    want = parts(label)
    return any(len(parts(p)) == len(want) and all(
        fnmatch.fnmatchcase(w, q) for w, q in zip(want, parts(p), strict=True))
        for p in patterns)


@pytest.mark.parametrize(("pattern", "selected"), [
    ("neighbourhood=*", {"neighbourhood=riverside", "neighbourhood=__other__"}),
    ("neighbourhood=*,property_type=*", {"neighbourhood=riverside,property_type=house"}),
    ("*=*,*=*", {"neighbourhood=riverside,property_type=house", "amount=[0,10),country=US"}),
    ("amount=*", {"amount=[0,10)", "amount=(-inf,0)", "amount=[100,+inf)",
                  "amount=__missing__"}),
    ("amount=[[]*", {"amount=[0,10)", "amount=[100,+inf)"}),
    ("*", {x for x in LABELS if len(parts(x)) == 1}),
    ("*=house", {"property_type=house"}),
    ("overall", {"overall"}),
])
def test_documented_examples(pattern, selected):
    assert {x for x in LABELS if slice_matches((pattern,), x)} == selected
    regex = re.compile(glob_regex([pattern]))
    assert {x for x in LABELS if regex.fullmatch(x)} == selected


def test_issue_case_cross_is_not_matched_by_single_key_glob():
    rule = RuleSpec(name="r", kind="metric", slices=("neighbourhood=*",))
    assert rule.applies_to("m", "neighbourhood=riverside")
    assert not rule.applies_to("m", "neighbourhood=riverside,property_type=house")
    assert RuleSpec(name="r", kind="metric").applies_to("m", "a=b,c=d")  # no patterns: all


_PAT = st.text("ab*?[]!=,", min_size=1, max_size=8)
_LABEL = st.lists(st.tuples(st.text("ab", min_size=1, max_size=2),
                            st.text("ab,()[]", max_size=4)), min_size=1, max_size=3).map(
    lambda kv: ",".join(f"{k}={v}" for k, v in kv))


@settings(max_examples=500)
@given(st.lists(_PAT, min_size=1, max_size=3), st.one_of(_LABEL, st.text("ab=,[]", max_size=8)))
def test_regex_and_engine_follow_the_definition(patterns, label):
    want = reference(patterns, label)
    assert slice_matches(tuple(patterns), label) == want, (patterns, label, slice_regex(patterns))


def test_promql_regex_is_re2_syntax():
    """Only RE2 constructs: no lookaround, backreferences or \\Z."""
    regex = glob_regex(["a=*,b=?", "[!x]*", "*=[a-c]"])
    assert not re.search(r"\(\?[=!<]|\\Z|\\\d", regex), regex
