"""Decoding blocks with rejects: the cost of carrying each reject's line (dead-letter ``line``).

    .venv/bin/python bench/reject_places.py --old /path/to/checkout-before-the-change

Times ``Decoder.decode_lines`` on 10 000-line blocks, with 20 % and 100 % of the lines
rejected (invalid JSON, a missing model), in this checkout and in ``--old`` (the baseline),
each a child process, interleaved old/new ``--repeat`` times; prints the best CPU seconds
of each and the ratio new/old.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def child(share: float, blocks: int) -> float:
    import orjson

    from monitor.ingest.decode import Decoder
    from slices.spec import SchemaSpec

    lines = []
    for i in range(10_000):
        rec = {"ts": 1.7e9 + i, "features": {"c": "a"}, "prediction": {"score": 0.5}}
        if i % 100 < share * 100:
            lines.append(b"{bad" if i % 2 else orjson.dumps(rec))  # no model: rejected
        else:
            lines.append(orjson.dumps({**rec, "model": "m"}))
    d = Decoder(SchemaSpec(time="ts"))
    t = time.process_time()
    for _ in range(blocks):
        d.decode_lines(lines)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="a checkout of the baseline revision")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(child(a.child, a.blocks))
        return
    for share in (0.2, 1.0):
        best = {"old": float("inf"), "new": float("inf")}
        for _ in range(a.repeat):
            for name, root in (("old", a.old), ("new", str(HERE))):
                env = {**os.environ, "PYTHONPATH": root}
                out = subprocess.run([sys.executable, __file__, "--old", a.old, "--child",
                                      str(share), "--blocks", str(a.blocks)], env=env,
                                     capture_output=True, text=True, check=True).stdout
                best[name] = min(best[name], float(out))
        print(f"{share:.0%} rejected: old {best['old']:.3f} CPU-s, new {best['new']:.3f} "
              f"CPU-s, new/old {best['new'] / best['old']:.2f}")


if __name__ == "__main__":
    main()
