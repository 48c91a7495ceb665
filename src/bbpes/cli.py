"""The `bbpes` command line: it only parses and calls (see `bbpes.framework.runner`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ConfigError

USAGE_EXIT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        print(f"bbpes: error: {message}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bbpes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="every experiment, one line each")
    show = sub.add_parser("show", help="an experiment's settings, defaults and quick values")
    show.add_argument("name")
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name")
    run.add_argument(
        "--quick", action="store_true", help="small version, about a minute on 2 CPU cores"
    )
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--out", default=None, help="output directory (default runs/NAME-TIMESTAMP)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings from an earlier run's config.json or a TOML file (--set, --seed win)",
    )
    compare = sub.add_parser(
        "compare", help="runs side by side: a plot of a history metric, a table of final metrics"
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--metric", default=None, help="history metric to plot (default: loss)")
    compare.add_argument(
        "--out", default=None, help="output directory (default runs/compare-TIMESTAMP)"
    )
    bench = sub.add_parser("bench", help="performance measurements as JSON")
    bench.add_argument("name")
    bench.add_argument("--out", default=None, help="write the JSON here too")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--quick", action="store_true")
    return parser


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _list() -> None:
    from . import signals
    from .experiments import registry

    experiments = registry()
    width = max(map(len, experiments))
    for name, experiment in experiments.items():
        print(f"{name:<{width}}  {experiment.summary}")
    print("\nlearning signals (any experiment's method; bbpes show NAME for one):")
    found = [signals.signal(n) for n in signals.names()]
    width = max(len(s.name) for s in found)
    for s in found:
        print(f"  {s.name:<{width}}  {s.family:<8}  needs {s.needs}; {s.reference}")


def _show_signal(name: str) -> None:
    from . import signals

    s = signals.signal(name)
    print(f"{s.name}: {s.family} signal ({type(s).__name__}); {s.reference}")
    print(
        f"  needs the task's {s.needs}" + (f", and one of {', '.join(s.guide)}" if s.guide else "")
    )
    step = s.step_setting or "its own (the strategy's update)"
    print(f"  step size: {step}; gradient clip: {'yes' if s.clip else 'no'}; tuned on: {s.tuned}")
    print(f"  cost per iteration: {s.cost} forward passes; memory: {s.memory}")
    for knob in s.knobs:
        print(f"  {knob.name} = {knob.default}  # {knob.describe()}")


def _show(name: str) -> None:
    from . import signals
    from .experiments import get, registry

    if name not in registry() and (name in signals.names() or ":" in name):
        _show_signal(name)
        return
    experiment = get(name)
    print(f"{experiment.name}: {experiment.summary}")
    config = experiment.config(checked=False)
    table = experiment.table
    for key, value in config.items():
        if key not in table:
            continue
        setting = table[key]
        extra = f"  (quick: {setting.quick})" if key in experiment.quick else ""
        choices = setting.choices
        shown = (
            f"  [{', '.join(map(str, choices))}]"
            if isinstance(choices, (tuple, list, set, frozenset))
            else ""
        )
        note = setting.describe()
        print(f"  {key} = {value}{extra}{shown}{f'  # {note}' if note else ''}")


def _run(args: argparse.Namespace, started: list, cluster=None) -> None:
    if cluster is not None and not cluster.leader:
        _follow(args, cluster)
        return
    from .framework.runner import run_experiment
    from .progress import log

    def on_start(run) -> None:
        started.append(run.path)
        verb = "continuing" if args.resume else "running"
        log(f"bbpes: {verb} {args.name} in {run.path}/")
        if cluster is not None:
            from .distributed import set_resume_hint

            set_resume_hint(f"; continue with: bbpes run {args.name} --resume --out {run.path}")

    run, metrics = run_experiment(
        args.name,
        _overrides(args.set),
        quick=args.quick,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        config_file=args.config,
        on_start=on_start,
    )
    figures = sorted(p.name for p in run.path.glob("*.png"))
    log("")
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) or v is None}
    print("metrics:")
    for key, value in list(shown.items())[:30]:
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"  {key} = {text}")
    # the paths last, so they are what the terminal shows when the run ends
    print(f"results: {run.path}/")
    print(f"  metrics: {run.path / 'metrics.json'}")
    print(f"  history: {run.path / 'history.jsonl'}")
    for name in figures:
        print(f"  figure:  {run.path / name}")


def _follow(args: argparse.Namespace, cluster) -> None:
    """Process k > 0 of a run of several: the same run, step for step (the processes
    compute together), but its files go to a private directory that is deleted at the
    end, and it prints nothing but errors: only process 0 writes the run directory.
    With --resume, the run directory (on a filesystem every host sees) is copied there
    first."""
    from .framework.runner import run_experiment
    from .runs import RunDir

    private = Path(tempfile.mkdtemp(prefix=f"bbpes-process{cluster.process_id}-"))
    out = private / "run"
    try:
        if args.resume and args.out is not None and RunDir(args.out).holds_run():
            shutil.copytree(args.out, out)
        elif args.resume:
            out = args.out  # nothing to resume there: run_experiment says so, writing nothing
        with _silenced():
            run_experiment(
                args.name,
                _overrides(args.set),
                quick=args.quick,
                seed=args.seed,
                out=out,
                resume=args.resume,
                config_file=args.config,
            )
    except ConfigError as error:  # name the run directory, not the private one
        raise ConfigError(str(error).replace(str(out), str(args.out))) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        contextlib.redirect_stderr(devnull),
    ):
        yield


def _join_cluster():
    """The run's `bbpes.distributed.Cluster` when the environment asks for several
    processes (JAX's distributed runtime started, before JAX runs anything); else None."""
    from .distributed import from_environment, initialize

    cluster = from_environment()
    if cluster is not None:
        log_dir = Path(tempfile.gettempdir())
        initialize(
            cluster, runtime_log=log_dir / f"bbpes-jax-{cluster.process_id}-{os.getpid()}.log"
        )
    return cluster


def _compare(args: argparse.Namespace) -> None:
    from .compare import compare_runs

    comparison = compare_runs(args.runs, metric=args.metric, out=args.out)
    print(f"compared {len(comparison.runs)} runs of {comparison.experiment} ({comparison.metric}):")
    for run in comparison.runs:
        print(f"  {run.label}: {run.path}/")
    print(f"results: {Path(comparison.files['json']).parent}/")
    for kind, path in comparison.files.items():
        print(f"  {kind + ':':<9} {path}")


def _bench(args: argparse.Namespace) -> int:
    """Run a benchmark; `bench compare` exits 1 when a ratio regressed."""
    from .bench import run_benchmark

    result = run_benchmark(args.name, _overrides(args.set), quick=args.quick, out=args.out)
    if args.name == "compare" and isinstance(result, dict) and result.get("ok") is False:
        print("bbpes: bench compare: a ratio regressed beyond the tolerance", file=sys.stderr)
        return 1
    return 0


def _split_cpu() -> None:
    from .parallel import split_cpu

    try:
        split_cpu()
    except ValueError as error:
        raise ConfigError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started: list = []  # the run directory, once a run has started
    cluster = None  # several processes: bbpes.distributed
    try:
        if args.command == "run":  # benchmarks time one device (`bench devices`: both)
            _split_cpu()
            cluster = _join_cluster()
        if args.command == "list":
            _list()
        elif args.command == "show":
            _show(args.name)
        elif args.command == "run":
            _run(args, started, cluster)
        elif args.command == "compare":
            _compare(args)
        elif args.command == "bench":
            return _bench(args)
    except ConfigError as error:
        lines = [line.strip().rstrip(";") for line in str(error).splitlines()]
        message = "; ".join(line for line in lines if line)  # one line, whatever it held
        print(f"bbpes: error: {message}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        hint = (
            f"; continue with: bbpes run {args.name} --resume --out {started[0]}" if started else ""
        )
        print(f"bbpes: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bbpes show NAME | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if cluster is not None:  # a collective failed: was it a dead peer? (one line, exit 3)
            from .distributed import await_verdict

            await_verdict(error)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
