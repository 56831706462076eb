"""``python -m monitor.generate dashboards|prom-rules -c spec.yaml -o OUT`` (until the CLI has
``slicewatch grafana`` / ``slicewatch prom-rules``)."""

from __future__ import annotations

import argparse
import sys

from slices.errors import SlicewatchError, SpecError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monitor.generate")
    p.add_argument("what", choices=("dashboards", "prom-rules"))
    p.add_argument("-c", "--config", required=True, help="spec YAML file")
    p.add_argument("-o", "--out", required=True,
                   help="output directory (dashboards) or rules file (prom-rules)")
    args = p.parse_args(argv)
    from monitor.generate import write_dashboards, write_prom_rules
    from slices.load import load_spec

    try:
        spec = load_spec(args.config)
        paths = (write_dashboards(spec, args.out) if args.what == "dashboards"
                 else write_prom_rules(spec, args.out))
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 2
    except SlicewatchError as exc:
        print(f"slicewatch: error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
