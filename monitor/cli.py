"""``slicewatch`` command line. Thin: parse arguments, call one library function, map errors
to exit codes.

Exit codes: 0 success; 1 runtime failure (input cannot be read, service unreachable…);
2 invalid spec or usage; 130 interrupted twice (forced stop).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from monitor.runtime.exit_codes import (
    EXIT_FAILURE,
    EXIT_FORCED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from slices.errors import SlicewatchError, SpecError

EPILOG = "exit codes: 0 ok · 1 runtime failure · 2 invalid spec or usage · 130 forced stop"


def version() -> str:
    """The installed package's version (from its metadata)."""
    import importlib.metadata  # here: its import and the metadata scan cost every command ≈ 60 ms

    try:
        return importlib.metadata.version("slicewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def listen_address(value: str) -> str:
    """argparse type of ``--listen``: ``host:port`` or ``''`` (no HTTP server)."""
    if value == "":
        return value
    from monitor.export.httpserver import parse_listen

    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _at_least(low: float, kind: type = int):
    """argparse type: a ``kind`` number ``>= low``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} >= {low}; "
                                             f"got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"must be >= {low}; got {text}")
        return value
    return parse


class _VersionAction(argparse.Action):
    """``--version``: print ``slicewatch <version>`` and which JSON reader runs, and exit (the
    version looked up then)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from monitor.ingest.native_block import status

        parser._print_message(f"slicewatch {version()}\n{status()}\n", sys.stdout)
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slicewatch",
        description="ML monitoring daemon: metrics per slice over event-time windows, drift "
                    "against reference profiles, alerts to on-call.", epilog=EPILOG)
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon on the spec's source",
                         description="Run the daemon: read the spec's source (or --input), "
                                     "window, slice, evaluate, serve /metrics.", epilog=EPILOG)
    run.add_argument("-c", "--config", required=True, help="spec YAML file")
    run.add_argument("-i", "--input", action="append", default=[],
                     help="input file or glob (JSONL, CSV, Parquet; '-' = stdin); repeatable; "
                          "overrides source.path")
    run.add_argument("--listen", type=listen_address,
                     help="address for /metrics, e.g. 127.0.0.1:9108 ('' disables the HTTP "
                          "server)")
    run.add_argument("--follow", action="store_true", default=None,
                     help="tail the input files as they grow")
    run.add_argument("--linger", type=float, default=0.0,
                     help="after a replay ends keep serving /metrics this many seconds "
                          "(-1 = until interrupted)")
    run.add_argument("--dead-letter", help="file for rejected and late records (JSONL)")
    run.add_argument("--results", help="write every closed window's per-slice results to "
                                       "this JSONL file (the history; docs/results-format.md); "
                                       "it must be new or empty unless --results-append")
    run.add_argument("--results-append", action="store_true",
                     help="add this run's lines to an existing --results file")
    run.add_argument("--report", metavar="HTML",
                     help="when the run ends, write an HTML report of its results there")
    run.add_argument("--alerts-db", help="SQLite file of the alert outbox and state "
                                         "(default slicewatch-state/alerts.db)")
    run.add_argument("--pushgateway", metavar="URL",
                     help="after a replay, push the final metrics to this Prometheus "
                          "Pushgateway (grouping key: job=slicewatch, model)")
    run.add_argument("-q", "--quiet", action="store_true", help="no per-window table")
    run.add_argument("--role", choices=("all", "worker", "evaluator"), default="all",
                     help="all: one process does everything (default); worker / evaluator: "
                          "scale out on Kafka, workers fold partitions into partials, one "
                          "evaluator merges them and closes windows (docs/scaling.md)")
    run.add_argument("--instance-id", metavar="NAME",
                     help="overrides source.kafka.instance_id (one per worker replica)")
    run.add_argument("--notify", action=argparse.BooleanOptionalAction, default=None,
                     help="send alert notifications (default: yes, except for a replay of "
                          "files without --follow, whose alerts are only printed/recorded)")

    rep = sub.add_parser("report", help="an HTML report of a results history",
                         description="Write a self-contained HTML report (charts of metrics, "
                                     "drift, concept-drift events, data quality) of a "
                                     "--results history file.", epilog=EPILOG)
    rep.add_argument("--results", required=True, help="results history (JSONL) of run")
    rep.add_argument("--profile", action="append", default=[],
                     help="reference profile JSON (repeatable): reference vs window "
                          "distributions of drifted features")
    rep.add_argument("-o", "--output", required=True, help="HTML file to write")
    rep.add_argument("--title", help="page title")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    init = sub.add_parser("init", help="propose a spec from a sample of your records",
                          description="Read a sample of your prediction records (JSONL or "
                                      "CSV) and print a spec proposal: schema paths, feature "
                                      "types, a few slices. It passes validate; edit it.",
                          epilog=EPILOG)
    init.add_argument("--from", dest="sample", required=True, metavar="SAMPLE",
                      help="sample file: .jsonl/.json/.ndjson or .csv")
    init.add_argument("-o", "--output", help="write the spec there (default: stdout)")
    init.add_argument("--model", default=None, help="model name (default: from the sample)")
    init.add_argument("--force", action="store_true",
                      help="overwrite the -o file if it exists (default: refuse)")

    val = sub.add_parser("validate", help="check a spec; print every problem",
                         description="Check a spec and print every problem as "
                                     "file:line:column: path: message.", epilog=EPILOG)
    val.add_argument("-c", "--config", required=True, help="spec YAML file")

    demo = sub.add_parser("demo", help="run on a synthetic stream with drift injected",
                          description="Generate a synthetic stream for a binary classifier "
                                      "with a degradation and a feature shift injected "
                                      "half-way, run the daemon on it and serve /metrics.",
                          epilog=EPILOG)
    demo.add_argument("--listen", default="127.0.0.1:9108", type=listen_address,
                      help="address for /metrics (port 0 picks a free one)")
    demo.add_argument("--windows", type=_at_least(1), default=12,
                      help="event-time windows to generate")
    demo.add_argument("--per-window", type=_at_least(1), default=3000,
                      help="records per window")
    demo.add_argument("--seconds", type=_at_least(0, float), default=15.0,
                      help="wall-clock seconds over which the stream is played")
    demo.add_argument("--linger", type=float, default=-1,
                      help="seconds to keep serving /metrics afterwards (-1 = until Ctrl-C)")
    demo.add_argument("--out", default=None, help="directory for the demo's files "
                      "(default: a temporary one)")
    base = sub.add_parser("baseline", help="build reference profiles for drift detection",
                          description="Reference profiles for drift detection.", epilog=EPILOG)
    base_sub = base.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    build = base_sub.add_parser("build", help="build a profile from reference data",
                                description="Build a reference profile per model (and per "
                                            "slice when drift.per_slice) from reference data "
                                            "in the spec's record shape.", epilog=EPILOG)
    build.add_argument("-c", "--config", required=True, help="spec YAML file")
    build.add_argument("--data", required=True, action="append",
                       help="reference data: .parquet, .csv or .jsonl (glob ok; repeatable)")
    build.add_argument("-o", "--output", required=True,
                       help="profile JSON path ({model} is replaced by the model name)")
    build.add_argument("--model", help="only this model")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    graf = sub.add_parser("grafana", help="write Grafana dashboards and provisioning",
                          description="Generate the operations dashboard, one dashboard per "
                                      "model and Grafana file provisioning from the spec.",
                          epilog=EPILOG)
    graf.add_argument("-c", "--config", required=True, help="spec YAML file")
    graf.add_argument("-o", "--output", required=True, help="output directory (its "
                      "dashboards/ and provisioning/ files are overwritten)")
    graf.add_argument("--prometheus-url", default="http://localhost:9090",
                      help="URL of the provisioned Prometheus datasource")
    rules = sub.add_parser("prom-rules", help="write Prometheus alerting rules",
                           description="Translate the spec's alert rules into Prometheus "
                                       "alerting rules, with a promtool unit-test file beside "
                                       "them.", epilog=EPILOG)
    rules.add_argument("-c", "--config", required=True, help="spec YAML file")
    rules.add_argument("-o", "--output", required=True, help="rules file (e.g. rules.yml)")

    alerts = sub.add_parser("alerts", help="test receivers, list firing alerts",
                            description="Alert tools: send a test notification, list the "
                                        "alerts firing.", epilog=EPILOG)
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    test = alerts_sub.add_parser("test", help="send a clearly marked test notification",
                                 description="Send a test notification (marked as a test) to "
                                             "every receiver of the spec, or one.",
                                 epilog=EPILOG)
    test.add_argument("-c", "--config", required=True, help="spec YAML file")
    test.add_argument("--receiver", help="only this receiver")
    lst = alerts_sub.add_parser("list", help="show the alerts firing now",
                                description="List the alerts firing, from the daemon's alert "
                                            "state file.", epilog=EPILOG)
    lst.add_argument("--db", default=None, help="alert state file "
                                                "(default slicewatch-state/alerts.db)")
    lst.add_argument("-c", "--config", help="spec YAML file whose inhibit_rules mark "
                                            "inhibited alerts (default: the default rule)")
    _errors_at_leaves(p)
    return p


def _errors_at_leaves(parser: argparse.ArgumentParser) -> None:
    """Each parser records itself (``args._parser``; the innermost subcommand wins), so an
    unknown option is reported with the usage of the subcommand it was given to."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _errors_at_leaves(child)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; usage errors exit 2 with the usage of the (sub)command concerned."""
    args, extra = _parser().parse_known_args(argv)
    if extra:
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def single_threaded_blas() -> None:
    """OpenBLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` says otherwise (set before
    numpy loads; children inherit it). The daemon's matrix products are per batch and small
    (10 000 × 20 for the multivariate drift): BLAS threads only spin on a busy machine — a
    1M-row Parquet replay took 9.2 s of CPU with them, 6.4 s without (bench/peers, #13)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def lean_arrow_pool(pool: str = "jemalloc") -> None:
    """On Linux (whose pyarrow wheels have jemalloc), Arrow allocates from ``pool`` unless
    ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise (set before pyarrow loads; a build without
    jemalloc warns once and keeps its default). Its default,
    mimalloc, keeps the pages of freed record batches resident: peak RSS of the drift job of
    bench/peers (#13) 408 → 365 MiB (profile build), 235 → 210 MiB (1M-row Parquet replay).

    The profile build (a one-shot read, then no Arrow at all) takes ``"system"``: jemalloc
    kept ≈ 30 MiB of the read's freed pages through every later phase (its decay purges on
    allocator activity, and there is none after the read; ``release_unused`` left them),
    while glibc's are handed back between phases (:mod:`monitor.core.memory`): build peak
    216 → 187 MiB on the peers reference, the same CPU (#13)."""
    if "pyarrow" not in sys.modules and sys.platform.startswith("linux"):  # wheels with it
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", pool)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_batch_memory() -> None:
    """glibc's allocator keeps freed memory for reuse (up to 64 MiB at the heap's top; blocks
    under 4 MiB from the heap, not mmap): a batch's numpy temporaries (10 000 × 20 float64:
    1.6 MB) are otherwise mapped and unmapped each time, and their page faults cost — a 1M-row
    Parquet replay spent 1.2 s in the kernel with the defaults, 0.5 s with these (bench/peers,
    #13); peak RSS is the same. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 4 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    single_threaded_blas()
    keep_batch_memory()
    if not (sys.argv[1:] if argv is None else argv):  # `slicewatch` alone: the commands
        _parser().print_help(sys.stderr)
        return EXIT_USAGE
    args = parse_args(argv)
    lean_arrow_pool("system" if args.command == "baseline" else "jemalloc")
    try:
        return _dispatch(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"slicewatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SlicewatchError as exc:
        print(f"slicewatch: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FORCED
    except BrokenPipeError:  # stdout closed early (`slicewatch run … | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # an output path that cannot be written, a file gone meanwhile…
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"slicewatch: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    from slices.load import load_spec

    if args.command == "validate":
        spec = checked_spec(args.config)
        n_slices = sum(len(m.slices) for m in spec.models)
        print(f"{args.config}: ok ({len(spec.models)} model(s), {n_slices} slice rule(s))")
        return EXIT_OK
    if args.command == "run":
        from monitor.runtime.app import RunOptions, run

        spec = checked_spec(args.config, inputs=bool(args.input))
        linger = float("inf") if args.linger < 0 else args.linger
        problem = (_results_problem(args, resumable=bool(spec.checkpoint))
                   or _unwritable(args.report, "--report"))
        if problem:
            print(f"slicewatch: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        if args.instance_id:
            spec = _with_instance(spec, args.instance_id)
        with _results_file(args) as results:
            opts = RunOptions(inputs=tuple(args.input), listen=args.listen,
                              follow=args.follow, linger=linger, quiet=args.quiet,
                              dead_letter=args.dead_letter, results=results,
                              results_append=args.results_append, report=args.report,
                              alerts_db=args.alerts_db, pushgateway=args.pushgateway,
                              notify=args.notify)
            if args.role != "all":
                from monitor.runtime.wiring import effective_spec
                from monitor.scale.kafka_roles import run_role

                run_role(effective_spec(spec, opts), opts, args.role)
                return EXIT_OK
            run(spec, opts)
        return EXIT_OK
    if args.command == "report":
        return _report(args)
    if args.command == "init":
        from monitor.runtime.init_spec import propose_spec

        if args.output and os.path.exists(args.output) and not args.force:
            print(f"slicewatch: error: {args.output} exists: pass --force to overwrite it, "
                  "or choose another -o", file=sys.stderr)
            return EXIT_USAGE
        text = propose_spec(args.sample, model=args.model,
                            spec_dir=os.path.dirname(args.output or "") or ".")
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"spec proposal written to {args.output}; check it with: slicewatch "
                  f"validate -c {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    if args.command == "grafana":
        from monitor.generate import write_dashboards

        for path in write_dashboards(load_spec(args.config), args.output,
                                     prometheus_url=args.prometheus_url):
            print(path)
        return EXIT_OK
    if args.command == "prom-rules":
        from monitor.generate import write_prom_rules

        for path in write_prom_rules(load_spec(args.config), args.output):
            print(path)
        return EXIT_OK
    if args.command == "alerts":
        return _alerts(args, load_spec)
    if args.command == "baseline":
        from monitor.runtime.baseline import build_baselines

        spec = load_spec(args.config)
        for r in build_baselines(spec, args.data, args.output, args.model, quiet=args.quiet):
            print(f"{r.model}: profile of {r.rows} records ({r.rejected} rejected, "
                  f"{r.slices} slice references) written to {r.path}")
        return EXIT_OK
    if args.command == "demo":
        from monitor.runtime.demo import run_demo

        linger = float("inf") if args.linger < 0 else args.linger
        run_demo(listen=args.listen, windows=args.windows, per_window=args.per_window,
                 seconds=args.seconds, linger=linger, out_dir=args.out)
        return EXIT_OK
    raise AssertionError(args.command)  # argparse guarantees a known command


def _with_instance(spec, instance_id: str):
    """``spec`` with ``source.kafka.instance_id`` set (``run --instance-id``)."""
    import dataclasses

    kafka = dict(spec.source.kafka or {})
    kafka["instance_id"] = instance_id
    return dataclasses.replace(spec, source=dataclasses.replace(spec.source, kafka=kafka))


def _results_problem(args: argparse.Namespace, *, resumable: bool = False) -> str | None:
    """Why ``--results`` / ``--results-append`` cannot be used as given (None: they can).
    ``resumable``: the spec has a checkpoint, so a run continues the previous one and its
    history (appending is implied)."""
    path = args.results
    if args.results_append and not path:
        return "--results-append needs --results FILE"
    if resumable:
        args.results_append = True
    if path and not args.results_append and os.path.exists(path) and os.path.getsize(path):
        return (f"results file {path} already holds results: pass --results-append to add "
                "this run to it, or remove it")
    return None


def _unwritable(path: str | None, option: str) -> str | None:
    """Why the file ``path`` of ``option`` could not be written when the run ends (None: it
    can), so a long replay does not end in an error."""
    if not path:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        why = ("is a directory" if os.path.isdir(path) else
               "its directory does not exist" if not os.path.isdir(folder) else
               "its directory is not writable")
        return f"{option} {path}: {why}"
    return None


@contextlib.contextmanager
def _results_file(args: argparse.Namespace) -> Iterator[str | None]:
    """``--results``, or a temporary history for ``--report`` alone (removed after)."""
    if args.results or not args.report:
        yield args.results
        return
    with tempfile.TemporaryDirectory(prefix="slicewatch-report-") as tmp:
        yield os.path.join(tmp, "results.jsonl")


def _report(args: argparse.Namespace) -> int:
    from monitor.outputs.report import write_report
    from monitor.runtime.progress import Bar, enabled

    total = os.path.getsize(args.results) if os.path.isfile(args.results) else None
    with Bar("report", total, show=enabled(args.quiet)) as bar:
        size = write_report(args.results, args.output, profiles=args.profile,
                            progress=lambda n: bar.update(advance=n), title=args.title)
    print(f"{args.output}: {size / 1e6:.1f} MB")
    return EXIT_OK


def checked_spec(path: str, *, inputs: bool = False):
    """The spec as ``validate`` checks it and ``run`` uses it (runtime checks included, see
    :mod:`monitor.runtime.preflight`); its warnings are printed once, to stderr. ``inputs``:
    ``run -i`` replaces ``source.path``, so a warning about that path is not printed."""
    from monitor.runtime.preflight import check
    from slices.load import load_spec

    spec = load_spec(path, probe=check)
    for warning in spec.warnings:
        if not (inputs and warning.path == "source.path"):
            print(str(warning), file=sys.stderr)
    return spec


def _alerts(args: argparse.Namespace, load_spec) -> int:
    from alerts import list_firing, send_test_notification
    from alerts.engine import inhibited_of
    from alerts.errors import UnknownReceiverError
    from alerts.template import format_value
    from monitor.outputs.alerting import DEFAULT_DB
    from slices.alerting import DEFAULT_INHIBIT

    if args.alerts_command == "test":
        spec = load_spec(args.config)
        if spec.alerting is None:
            print(f"{args.config}: no receivers configured", file=sys.stderr)
            return EXIT_USAGE
        try:
            results = send_test_notification(spec, args.receiver)
        except UnknownReceiverError as exc:
            print(f"slicewatch: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for r in results:
            print(f"{r.receiver}: {r.outcome}" + (f" ({r.detail})" if r.outcome == "ok"
                                                 else f": {r.detail}"))
        return EXIT_FAILURE if any(r.outcome == "failed" for r in results) else EXIT_OK
    db = args.db or DEFAULT_DB
    if not os.path.exists(db):
        print(f"slicewatch: no alert state at {db} (has the daemon run with alert rules?)",
              file=sys.stderr)
        return EXIT_FAILURE
    rules = DEFAULT_INHIBIT
    if args.config:
        alerting = load_spec(args.config).alerting
        rules = alerting.inhibit_rules if alerting is not None else ()
    firing = list_firing(db)
    muted = inhibited_of(firing, rules)
    if not firing:
        print("no alerts firing")
    for a in firing:
        labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        mark = "  (inhibited)" if a.fingerprint in muted else ""
        since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(a.starts_at))
        print(f"{a.labels.get('severity', '?'):<8} {a.labels.get('alertname', '?'):<24} "
              f"value={format_value(a.value)} {a.threshold}  since {since}  "
              f"{{{labels}}}{mark}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
