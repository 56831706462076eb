"""A daemon killed while its close worker is still starting leaves no worker behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.wait import wait_until

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys, time
from monitor.runtime.close_worker import ProcessCloser
closer = ProcessCloser()
closer.submit(time.sleep, 0.1)
print(" ".join(str(p) for p in closer._pool._processes), flush=True)
os._exit(0)  # like kill -9: the worker may still be starting
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_a_worker_whose_daemon_died_during_its_start_exits():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, out.stderr
    wait_until(lambda: not any(_alive(p) for p in pids), what="the orphaned worker exits")
