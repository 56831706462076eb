"""Routing tree, inhibition and group flush decisions as pure functions."""

from __future__ import annotations

from alerts.model import Alert
from alerts.route import Group, dedup_key, group_key, inhibited, match_routes
from slices.alerting import InhibitRule, Matcher, RouteSpec


def alert(name, severity="warning", status="firing", slice_="a", **labels) -> Alert:
    labels = {"alertname": name, "model": "fraud", "slice": slice_, "severity": severity,
              **labels}
    return Alert(fingerprint=f"{name}-{slice_}-{severity}", labels=labels, annotations={},
                 status=status, starts_at=0.0)


TREE = RouteSpec(receiver="default", routes=(
    RouteSpec(receiver="pd", matchers=(Matcher("severity", "=", "critical"),), continue_=True),
    RouteSpec(receiver="team", matchers=(Matcher("team", "=~", "risk|ops"),), routes=(
        RouteSpec(receiver="risk-pd", matchers=(Matcher("team", "=", "risk"),
                                                Matcher("severity", "!=", "info"))),)),
    RouteSpec(receiver="never", matchers=(Matcher("team", "!~", ".*"),)),
))


def receivers(labels):
    return [node.receiver for _, node in match_routes(TREE, labels)]


def test_match_routes_alertmanager_semantics():
    assert receivers({"severity": "warning"}) == ["default"]
    assert receivers({"severity": "critical"}) == ["pd"]  # continue, but no sibling matches
    assert receivers({"severity": "critical", "team": "ops"}) == ["pd", "team"]
    assert receivers({"severity": "warning", "team": "risk"}) == ["risk-pd"]  # deepest wins
    assert receivers({"severity": "info", "team": "risk"}) == ["team"]
    ids = [rid for rid, _ in match_routes(TREE, {"severity": "critical", "team": "risk"})]
    assert ids == ["0.0", "0.1.0"]


def test_group_key_and_dedup_key_stable():
    route = RouteSpec(receiver="r", group_by=("model",))
    k1 = group_key("0", route, {"model": "fraud", "slice": "a"})
    k2 = group_key("0", route, {"slice": "b", "model": "fraud"})
    assert k1 == k2 and dedup_key("r", k1) == dedup_key("r", k2)
    assert dedup_key("r", k1) != dedup_key("s", k1)
    all_labels = RouteSpec(receiver="r", group_by=("...",))
    assert group_key("0", all_labels, {"a": "1"}) != group_key("0", all_labels, {"a": "2"})


def test_inhibition_needs_equal_labels_and_other_alert():
    rules = (InhibitRule(source=(Matcher("severity", "=", "critical"),),
                         target=(Matcher("severity", "=", "warning"),)),)
    crit, warn = alert("x", "critical"), alert("y", "warning")
    warn_other_slice = alert("y", "warning", slice_="b")
    firing = [crit, warn, warn_other_slice]
    assert inhibited(warn, firing, rules)
    assert not inhibited(warn_other_slice, firing, rules)
    assert not inhibited(crit, firing, rules)
    self_rule = (InhibitRule(source=(Matcher("alertname", "=", "x"),),
                             target=(Matcher("alertname", "=", "x"),)),)
    assert not inhibited(crit, [crit], self_rule)  # never inhibits itself


def test_group_flush_decisions():
    a, b = alert("a"), alert("b")
    alerts = {a.fingerprint: a, b.fingerprint: b}
    g = Group(key="k", receiver="r", labels={}, repeat_interval=100.0, group_interval=10.0)
    g.add(a.fingerprint)
    first = g.flush(0.0, alerts, set())
    assert first.status == "firing" and [x.labels["alertname"] for x in first.alerts] == ["a"]
    assert g.flush(10.0, alerts, set()) is None  # nothing new, repeat not due
    g.add(b.fingerprint)
    second = g.flush(20.0, alerts, set())
    assert [x.labels["alertname"] for x in second.alerts] == ["a", "b"]
    assert g.flush(119.0, alerts, set()) is None
    assert g.flush(120.0, alerts, set()) is not None  # repeat_interval after last send
    a.status, a.ends_at = "resolved", 125.0
    third = g.flush(130.0, alerts, set())
    assert third.status == "firing" and {x.status for x in third.alerts} == {"firing",
                                                                             "resolved"}
    assert g.members == [b.fingerprint]
    b.status = "resolved"
    last = g.flush(140.0, alerts, set())
    assert last.status == "resolved" and g.empty
    # notifications hold snapshots: b resolved later, its copy in `third` still fires
    assert (third.alerts[0].labels["alertname"], third.alerts[0].status) == ("b", "firing")


def test_resolved_never_notified_is_dropped_and_muted_not_sent():
    a = alert("a")
    g = Group(key="k", receiver="r", labels={}, repeat_interval=100.0, group_interval=10.0)
    g.add(a.fingerprint)
    assert g.flush(0.0, {a.fingerprint: a}, {a.fingerprint}) is None  # muted
    a.status = "resolved"
    assert g.flush(10.0, {a.fingerprint: a}, set()) is None and g.empty


def test_send_resolved_false():
    a = alert("a")
    g = Group(key="k", receiver="r", labels={}, repeat_interval=100.0, group_interval=10.0)
    g.add(a.fingerprint)
    assert g.flush(0.0, {a.fingerprint: a}, set(), send_resolved=False) is not None
    a.status = "resolved"
    assert g.flush(10.0, {a.fingerprint: a}, set(), send_resolved=False) is None
