"""Cost per record of CBPE (and of multivariate drift), in-process, one run.

The spec, profile and records of ``bench/daemon_throughput.py`` (20 features, 10 slice rules
incl. a cross, binary metrics, drift per slice against a stored profile). Three profiles from
the same reference: (base) without calibration and PCA fit, (+cbpe) with the calibration,
(+pca) with the PCA fit. Runs alternate base / +cbpe / +pca ``--repeat`` times; prints the
best wall-clock seconds per record of each and the ratios to base measured in this run.

    .venv/bin/python bench/analysis_cbpe.py --records 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import best_of_variants, load, make_records

from slices.load import load_spec


def variant(spec_path: Path, profile: Path, keep: set[str], name: str):
    data = json.loads(profile.read_text())
    for key in ("calibration", "multivariate"):
        if key not in keep:
            data.pop(key, None)
    out = profile.with_name(f"profile-{name}.json")
    out.write_text(json.dumps(data))
    text = spec_path.read_text().replace(str(profile), str(out))
    path = spec_path.with_name(f"spec-{name}.yaml")
    path.write_text(text)
    return load_spec(str(path)), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lines = make_records(args.records)
    spec = load(args.window)
    profile = Path(spec.models[0].drift.profile)
    spec_path = profile.with_name("spec.yaml")
    variants = {}
    for name, keep in (("base", set()), ("+cbpe", {"calibration"}),
                       ("+pca", {"multivariate"})):
        variants[name], data = variant(spec_path, profile, keep, name)
        if keep and not all(k in data for k in keep):
            raise SystemExit(f"the reference profile has no {keep}")
    best_of_variants(variants, lines, args.repeat, args.window)


if __name__ == "__main__":
    main()
