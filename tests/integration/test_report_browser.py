"""The HTML report in a real headless Chromium (Debian's ``chromium``, started here and
driven over the DevTools protocol): it loads with no console error, draws the expected
charts, and a screenshot of it is not blank."""

from __future__ import annotations

import base64
import io
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.outputs.report import write_report

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium and a DevTools websocket to its first page."""

    def __init__(self, profile: Path):
        import websocket

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value"):
                return
            time.sleep(0.2)
        raise AssertionError(f"not true within {timeout}s: {expression}")

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(30)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/services "
                                             "install)")
def test_the_report_renders_in_chromium(tmp_path, replayed_history):
    from PIL import Image

    paths = replayed_history  # 8 windows of 1500 records (tests/conftest.py)
    report = tmp_path / "report.html"
    write_report(str(paths["results"]), str(report), profiles=[str(paths["profile"])])
    (tmp_path / "profile").mkdir()
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Runtime.enable")
        browser.call("Log.enable")
        browser.call("Page.enable")
        browser.call("Page.navigate", url=report.as_uri())
        browser.wait_for("document.readyState === 'complete'")
        browser.wait_for("document.querySelectorAll('.sw-chart .main-svg').length >= "
                         "document.querySelectorAll('.sw-chart').length")
        count = browser.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify({charts: [...document.querySelectorAll('.sw-chart')]"
            ".map(d => d.dataset.chart), heatmaps: document.querySelectorAll("
            "'.sw-chart .heatmaplayer image, .sw-chart .hm').length, "
            "lines: document.querySelectorAll('.sw-chart .scatterlayer .trace').length, "
            "bars: document.querySelectorAll('.sw-chart .barlayer .point').length})"))
        seen = json.loads(count["result"]["value"])
        assert {"metric:roc_auc", "drift-matrix", "drift-timeline", "timeline", "quality",
                "distribution:amount"} <= set(seen["charts"])
        assert seen["heatmaps"] >= 3 and seen["lines"] > 10 and seen["bars"] > 10
        shot = browser.call("Page.captureScreenshot", format="png")
        errors = [e for e in browser.events
                  if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"]["type"] == "error")
                  or (e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"]["level"] == "error")]
        assert errors == []
    finally:
        browser.close()
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("L")
    (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
    lo, hi = image.getextrema()
    assert hi - lo > 100  # not one flat colour
    histogram = image.histogram()
    assert max(histogram) < 0.97 * sum(histogram)  # more than a blank page with a speck
