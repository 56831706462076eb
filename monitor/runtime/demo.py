"""``slicewatch demo``: a synthetic fraud-model stream with a known degradation half-way.

What is injected from the half-way window until three quarters of the stream (so the user
knows what to look for), after which the stream recovers:

- **feature shift**: ``amount`` is multiplied by 1.8 for every record (inflow drift);
- **degradation**: for ``country=BR`` the model's score stops tracking the label
  (ROC AUC falls towards 0.5, accuracy drops) — a slice problem invisible in ``overall`` at
  first glance;
- **serving failures**: 8 % of ``device=web`` predictions time out (no score);
- **an undeclared slice**: for ``device=android`` with ``amount`` in ``[100, 500)`` (about
  5 % of records; no slice rule crosses device with amount) the scores are inverted; slice
  discovery (``discovery:``, docs/discovery.md) finds it.

The stream is written progressively to a JSONL file that the daemon tails (follow mode), so
the demo runs the same path as ``slicewatch run --follow``. Alert rules page a local webhook
receiver that the demo starts and prints: alerts fire during the incident and resolve after.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson

from monitor.ingest.file import FileSource
from monitor.runtime.app import RunOptions, run
from slices.load import load_spec_text

COUNTRIES = np.array(["US", "CA", "GB", "DE", "BR", "IN"], dtype=object)
COUNTRY_P = np.array([0.38, 0.12, 0.14, 0.12, 0.14, 0.10])
DEVICES = np.array(["ios", "android", "web"], dtype=object)
WINDOW_SECONDS = 60

DEMO_SPEC = """
version: 1
source: {type: file, path: "%(path)s", dead_letter: "%(dead)s", batch_size: 2000}
server: {listen: "%(listen)s", stale_after_windows: 3}
models:
  - name: fraud
    task: binary
    threshold: 0.5
    window: 1m
    allowed_lateness: 5s
    features:
      amount: numeric
      account_age_days: numeric
      country: categorical
      device: categorical
    slices:
      - overall: true
      - feature_keys: [country]
        max_values: 10
      - feature_keys: [device]
      - feature_keys: [country, device]
        max_values: 20
      - buckets: {amount: [0, 20, 100, 500]}
      - name: new_user_big_amount
        where: 'amount > 100 and "new_user" in tags'
        critical: true
        min_size: 30
      - tags: [new_user]
    discovery: {features: [country, device, amount], top_k: 3, horizon: 3}
"""

# Appended right after DEMO_SPEC: continues the model's mapping.
DEMO_DRIFT = """    drift:
      profile: "%(profile)s"
      per_slice: true
      concept: {detector: ADWIN}
"""

DEMO_ALERTS = """
alerts:
  - name: slice_auc_low
    model: fraud
    metric: roc_auc
    threshold: {lower: 0.6}
    slices: ["country=[A-Z][A-Z]"]
    min_count: 150
    severity: error
    annotations:
      summary: "{{ model }} {{ slice }}: ROC AUC {{ value }} ({{ threshold }})"
  - name: timeouts
    model: fraud
    metric: timeout_rate
    threshold: {upper: 0.03}
    slices: ["device=*"]
    min_count: 200
    severity: warning
  - name: amount_drift
    model: fraud
    drift: {features: [amount]}
    slices: [overall]
    severity: warning
    annotations:
      summary: "{{ model }} {{ slice }}: {{ feature }} drifted (effect size {{ value }})"
receivers:
  - {name: demo-webhook, type: webhook, url: "%(webhook)s"}
route:
  receiver: demo-webhook
  group_by: [alertname, slice]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
"""


def demo_spec(path: str, *, listen: str = "127.0.0.1:0", dead: str = "",
              profile: str | None = None, webhook: str | None = None) -> str:
    """The demo's spec text: the fraud model, plus drift against ``profile`` and alert rules
    paging ``webhook`` when given."""
    text = DEMO_SPEC + (DEMO_DRIFT if profile else "") + (DEMO_ALERTS if webhook else "")
    return text % {"path": path, "listen": listen, "dead": dead or path + ".dead-letter",
                   "profile": profile, "webhook": webhook}


def write_demo_profile(path: str, per_window: int = 3000, windows: int = 6) -> None:
    """The reference profile of the demo model: the same stream without the incident (another
    seed), built exactly as ``slicewatch baseline build`` does."""
    from monitor.drift import save_profile
    from monitor.ingest.decode import Decoder
    from monitor.runtime.baseline import profile_for

    spec = load_spec_text(demo_spec("reference.jsonl", profile=path), "<demo spec>")
    lines = [orjson.dumps(r) for records in demo_records(windows, per_window, seed=99,
                                                          inject=False) for r in records]
    batch, _ = Decoder(spec.schema, default_model="fraud").decode_lines(lines)
    save_profile(profile_for(spec.models[0], batch, source="demo reference stream"), path)


def incident(window: int, windows: int) -> bool:
    """Whether ``window`` is inside the injected incident: [half, three quarters)."""
    return windows // 2 <= window < max(windows * 3 // 4, windows // 2 + 1)


def demo_records(windows: int, per_window: int, *, seed: int = 7,
                 start: float | None = None, inject: bool = True) -> Iterator[list[dict]]:
    """Yield one list of records per event-time window (see the module doc for the drift;
    ``inject=False``: no incident, e.g. for a reference profile)."""
    rng = np.random.default_rng(seed)
    if start is None:
        start = (int(time.time()) // WINDOW_SECONDS - windows) * WINDOW_SECONDS
    for w in range(windows):
        shifted = inject and incident(w, windows)
        n = per_window
        country = rng.choice(COUNTRIES, size=n, p=COUNTRY_P)
        device = rng.choice(DEVICES, size=n, p=[0.45, 0.35, 0.20])
        age = rng.exponential(400, size=n).round()
        amount = rng.lognormal(3.5, 1.0, size=n) * (1.8 if shifted else 1.0)
        logit = -4.0 + 1.5 * np.log1p(amount / 30) + 2.2 * (age < 30) + 0.8 * (device == "web")
        label = rng.random(n) < 1 / (1 + np.exp(-logit))
        # The model sees the true logit with noise; after the shift it breaks for BR.
        model_logit = logit + rng.normal(0, 0.5, size=n)
        score = 1 / (1 + np.exp(-model_logit))
        if shifted:
            broken = country == "BR"
            score[broken] = rng.beta(2, 5, size=int(broken.sum()))
        if shifted:  # an undeclared conjunction: found by discovery, not by a slice rule
            hidden = (device == "android") & (amount >= 100) & (amount < 500)
            score[hidden] = 1 - score[hidden]
        outcome = np.full(n, "ok", dtype=object)
        if shifted:
            outcome[(device == "web") & (rng.random(n) < 0.08)] = "timeout"
        times = start + w * WINDOW_SECONDS + np.sort(rng.uniform(0, WINDOW_SECONDS, size=n))
        records = []
        for i in range(n):
            tags = ["new_user"] if age[i] < 30 else []
            rec = {
                "model": "fraud", "model_version": "v3", "prediction_id": f"p{w}-{i}",
                "timestamp": float(round(times[i], 3)),
                "features": {"amount": round(float(amount[i]), 2),
                             "account_age_days": float(age[i]),
                             "country": country[i], "device": device[i]},
                "prediction": ({"score": round(float(score[i]), 5)}
                               if outcome[i] == "ok" else {}),
                "label": int(label[i]), "tags": tags, "outcome": outcome[i],
            }
            records.append(rec)
        yield records


def run_demo(*, listen: str = "127.0.0.1:9108", windows: int = 12, per_window: int = 3000,
             seconds: float = 15.0, linger: float = float("inf"),
             out_dir: str | None = None) -> None:
    out_dir = out_dir or tempfile.mkdtemp(prefix="slicewatch-demo-")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "predictions.jsonl")
    open(path, "wb").close()
    receiver = DemoReceiver().start()
    profile = os.path.join(out_dir, "reference-profile.json")
    write_demo_profile(profile, per_window)
    spec = load_spec_text(demo_spec(path, listen=listen, profile=profile, webhook=receiver.url,
                                    dead=os.path.join(out_dir, "dead-letter.jsonl")),
                          "<demo spec>")
    first, last = windows // 2, max(windows * 3 // 4, windows // 2 + 1)
    print(f"slicewatch demo: {windows} windows × {per_window} records of a fraud model, "
          f"written to {path}\n  windows {first + 1}–{last}: amount ×1.8 (feature shift), "
          "country=BR scores decoupled from labels (degradation), 8% timeouts on device=web;"
          f" then it recovers\n  drift is tested against {profile} (built from an "
          f"incident-free stream)\n  alerts go to a local webhook receiver at {receiver.url}",
          flush=True)
    done = threading.Event()

    def write() -> None:
        pause = seconds / max(windows, 1)
        with open(path, "ab") as fh:
            for records in demo_records(windows, per_window):
                fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
                fh.flush()
                time.sleep(pause)
        done.set()

    writer = threading.Thread(target=write, name="demo-writer", daemon=True)
    writer.start()
    try:
        run(spec, RunOptions(linger=linger, alerts_db=os.path.join(out_dir, "alerts.db"),
                             notify=True),  # a live (followed) stream: page the receiver
            chunks=lambda stop: FileSource([path], follow=True, batch_size=2000,
                                           poll_interval=0.1, stop=_either(done, stop)).chunks())
    finally:
        receiver.stop()


class DemoReceiver:
    """A local webhook receiver (127.0.0.1) that prints each notification on one line."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                note = orjson.loads(body)
                outer.received.append(note)
                for alert in note.get("alerts", []):
                    mark = "🔔 FIRING  " if alert["status"] == "firing" else "✅ RESOLVED"
                    summary = alert["annotations"].get("summary", alert["labels"]["alertname"])
                    print(f"  {mark} [{alert['labels'].get('severity')}] {summary}", flush=True)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def start(self) -> DemoReceiver:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _either(a: threading.Event, b: threading.Event) -> threading.Event:
    """An event set when either ``a`` or ``b`` is set."""
    both = threading.Event()

    def watch() -> None:
        while not (a.wait(0.05) or b.is_set()):
            pass
        both.set()

    threading.Thread(target=watch, daemon=True).start()
    return both
