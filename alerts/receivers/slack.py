"""Slack incoming webhook: ``text`` (the fallback / notification line) plus Block Kit ``blocks``."""

from __future__ import annotations

from typing import Any

import orjson

from alerts.model import Notification
from alerts.receivers.base import Request, substitute
from alerts.template import format_value
from slices.alerting import ReceiverSpec

EMOJI = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:",
         "info": ":information_source:"}
MAX_TEXT = 3000  # Slack's limit for a section's text


def headline(note: Notification) -> str:
    first = note.alerts[0]
    tag = "[TEST] " if note.test else ""
    summary = first.annotations.get("summary", "")
    if note.test:  # one marker, in front
        summary = summary.removeprefix("[TEST] ")
    if note.status == "resolved":
        return f"{tag}:white_check_mark: RESOLVED: {summary}"
    more = f" (+{len(note.alerts) - 1} more)" if len(note.alerts) > 1 else ""
    return f"{tag}{EMOJI.get(first.severity, '')} {first.severity.upper()}: {summary}{more}"


def payload(note: Notification) -> dict[str, Any]:
    text = headline(note)[:MAX_TEXT]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}]
    for alert in note.alerts[:20]:
        fields = [f"*Model*\n{alert.labels.get('model', '')} {alert.labels.get('version', '')}",
                  f"*Slice*\n{alert.labels.get('slice', '')}",
                  f"*{alert.metric or 'value'}*\n{format_value(alert.value)}",
                  f"*Threshold*\n{alert.threshold}"]
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn",
                                "text": (f"*{alert.status.upper()}* "
                                         f"{alert.annotations.get('description', '')}")
                                [:MAX_TEXT]},
                       "fields": [{"type": "mrkdwn", "text": f} for f in fields]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"slicewatch · {note.dedup_key}"}]})
    return {"text": text, "blocks": blocks}


def build(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> Request:
    return Request(substitute(receiver, "url", receiver.url, env), orjson.dumps(payload(note)),
                   {}, receiver.url)
