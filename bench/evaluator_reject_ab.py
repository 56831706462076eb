"""Issue #14 (review fix): the evaluator's decode + merge cost per partial before and after
the all-or-nothing merge (a partial merged into its own fresh accumulators, then committed),
measured in one run: the same encoded partials (the ``bench/scale.py`` evaluator spec: 20
features, 10 slice rules, per-slice drift) fed alternately to an evaluator of ``--base``'s
``monitor/scale/{partials,evaluator}.py`` and to this tree's, ``--repeat`` times; process
CPU seconds (the machine is shared).

    .venv/bin/python bench/evaluator_reject_ab.py --base aff287f
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_throughput import FEATURES, SPEC, make_records, reference_profile

from monitor.ingest.source import Chunk
from monitor.scale import evaluator as new_evaluator
from monitor.scale.partials import decode_partial, encode_partial
from monitor.scale.worker import PartitionFold
from slices.load import load_spec

REPO = Path(__file__).resolve().parents[1]


def old_modules(base: str) -> types.ModuleType:
    """``base``'s evaluator module (with its own partials module)."""
    def load(name: str, path: str, replace: tuple[str, str] | None = None):
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{base}:{path}"], check=True,
                             capture_output=True, text=True).stdout
        if replace:
            src = src.replace(*replace)
        mod = types.ModuleType(name)
        mod.__file__ = f"{base}:{path}"
        sys.modules[name] = mod
        exec(compile(src, mod.__file__, "exec"), mod.__dict__)  # our own git history
        return mod

    load("old_partials", "monitor/scale/partials.py")
    return load("old_evaluator", "monitor/scale/evaluator.py",
                ("from monitor.scale.partials import", "from old_partials import"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="aff287f")
    ap.add_argument("--records", type=int, default=120_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile each variant once")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sw-reject-ab-"))
    text = SPEC.format(bootstrap="127.0.0.1:1", topic="t", features=FEATURES,
                       checkpoint=tmp / "cp.db", drift="{drift}")
    profile = reference_profile(text, tmp, records=50_000)
    (tmp / "spec.yaml").write_text(text.replace("{drift}", f"profile: {profile}"))
    spec = load_spec(str(tmp / "spec.yaml"))
    lines = make_records(args.records, seed=4, rate=200.0)
    folds = [PartitionFold(spec, f"p:{i}") for i in range(args.partitions)]
    blobs = []
    batch = 5000
    for i in range(0, len(lines), batch * args.partitions):
        for p, fold in enumerate(folds):
            part = lines[i + p * batch:i + (p + 1) * batch]
            if part:
                fold.process(Chunk("lines", part, partition=f"p:{p}"))
        blobs.extend(encode_partial(f.take_partial()) for f in folds)
    old = old_modules(args.base)
    sources = [f"p:{i}" for i in range(args.partitions)]
    if args.profile:
        import cProfile
        import pstats
        for name, mod in (("base", old), ("this", new_evaluator)):
            ev = mod.Evaluator(spec, sources=sources)
            prof = cProfile.Profile()
            prof.enable()
            for blob in blobs:
                ev.add(decode_partial(blob))
            prof.disable()
            print(f"--- {name}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    got: dict[str, list[float]] = {"base": [], "this": []}
    for _ in range(args.repeat):
        for name, mod in (("base", old), ("this", new_evaluator)):
            ev = mod.Evaluator(spec, sources=sources)
            t = time.process_time()
            for blob in blobs:
                ev.add(decode_partial(blob))
            got[name].append(time.process_time() - t)
    print(f"{len(blobs)} partials ({args.records:,} records, {args.partitions} partitions), "
          "decode + add, CPU s per run:")
    for name, xs in got.items():
        print(f"  {name}: " + ", ".join(f"{x:.2f}" for x in xs) + f" (best {min(xs):.2f})")
    ratios = [t / b for b, t in zip(got["base"], got["this"], strict=True)]
    print("  this / base per round: " + ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
