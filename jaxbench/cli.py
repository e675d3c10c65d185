"""The ``jaxbench`` command: list, info, run, report, compare."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from jaxbench.errors import JaxbenchError


def _parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise JaxbenchError(f"--set expects KEY=VALUE, got '{pair}' (e.g. --set analysis.n_pe_per_mu=50).")
        key, value = pair.split("=", 1)
        overrides[key.strip()] = value.strip()
    return overrides


def _cmd_list(args: argparse.Namespace) -> int:
    from jaxbench import registry

    for task_id in registry.registered():
        print(f"{task_id:24s} {registry.spec(task_id).summary}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from jaxbench import config as configs
    from jaxbench import registry

    task_spec = registry.spec(args.task_id)
    print(f"{task_spec.id}: {task_spec.summary}\n")
    if task_spec.datacard is not None:
        print("Datacard:")
        for key, value in task_spec.datacard(task_spec.config).items():
            print(f"  {key}: {value}")
    print("\nObjective criteria:")
    for criterion in task_spec.criteria:
        sign = ">=" if criterion.higher_is_better else "<="
        target = "" if criterion.target is None else f" (target {sign} {criterion.target})"
        print(f"  {criterion.metric}{target}: {criterion.description}")
    defaults = configs.flat_dict(task_spec.config)
    print("\nConfig (defaults; --set KEY=VALUE, KEY a dotted path or a unique field name):")
    for key, value in defaults.items():
        print(f"  {key} = {value!r}")
    for name, preset in task_spec.presets.items():
        changed = {k: v for k, v in configs.flat_dict(preset).items() if defaults.get(k) != v}
        listed = ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "nothing"
        print(f"\nPreset '{name}' (--preset {name}) changes: {listed}")
    print("\nStudies (jaxbench run ID --study NAME|all):" + ("" if task_spec.studies else " none"))
    for name in task_spec.studies:
        print(f"  {name}")
    return 0


def _out_dir(args: argparse.Namespace, task_id: str, preset: str) -> Path:
    suffix = "" if preset == "default" else f"-{preset}"
    return Path(args.out) if args.out else Path("runs") / f"{task_id}-seed{args.seed}{suffix}"


def _cmd_run(args: argparse.Namespace) -> int:
    from jaxbench import registry, runner

    preset = "quick" if args.quick else args.preset
    overrides = _parse_overrides(args.set)
    task = registry.make(args.task_id, preset, **overrides)
    out = args.resolved_out = _out_dir(args, task.id, preset)
    view = runner.execute(
        task,
        out,
        seed=args.seed,
        resume=args.resume,
        progress=not args.no_progress,
        data=args.data,
        studies=args.study,
        preset=preset,
    )
    _print_summary(out)
    if view.status == "failed":
        print(f"jaxbench: run failed: {view.note} (results kept in {out}).", file=sys.stderr)
        return 3
    return 0


def _seed(text: str) -> int:
    from jaxbench.rundir import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer in 0 … 2**63-1")
    return value


def _print_summary(run_dir: Path) -> None:
    summary = run_dir / "summary.txt"
    if summary.exists():
        print(summary.read_text())
    print(f"Report: {(run_dir / 'report.html').resolve()}")
    print(f"Metrics: {(run_dir / 'metrics.json').resolve()}")


def _cmd_report(args: argparse.Namespace) -> int:
    from jaxbench import config as configs
    from jaxbench import records, registry, runner

    run_dir = Path(args.run_dir)
    manifest_file = run_dir / runner.MANIFEST
    if not manifest_file.exists():
        raise JaxbenchError(f"{run_dir}: no {runner.MANIFEST}; pass a directory written by `jaxbench run`.")
    manifest = records.read_json(manifest_file)
    task_spec = registry.spec(manifest["task_id"])
    config = configs.from_dict(task_spec.config, manifest["config"], f"{manifest_file}")
    task = registry.build(task_spec.id, config)
    view = runner.reload(task, run_dir, int(manifest["seed"]), manifest.get("data"))
    path = runner.write_run_report(task, view, manifest)
    print(f"Report: {path.resolve()}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from jaxbench.report import compare_table, render_table_text

    print(render_table_text(compare_table([Path(p) for p in args.run_dirs])))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="jaxbench",
        description="JAX-native benchmarks for AI for science: run a task, write a report, compare runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="list the registered tasks", description="List the registered tasks.")
    p.set_defaults(fn=_cmd_list)

    p = commands.add_parser(
        "info",
        help="show a task's datacard, criteria, config and studies",
        description="Show a task's datacard, objective criteria, config keys and studies.",
    )
    p.add_argument("task_id", help="a registered task id, e.g. fair_universe-v0")
    p.set_defaults(fn=_cmd_info)

    p = commands.add_parser(
        "run",
        help="run a benchmark end to end and write its report",
        description="Run a task's benchmark end to end into a run directory "
        "(manifest.json, metrics.json, summary.txt, arrays/, plots/, report.html, and the task's own files).",
    )
    p.add_argument("task_id", help="a registered task id, e.g. fair_universe-v0")
    p.add_argument("--preset", default="default", help="a config preset: default, quick, tiny (see `jaxbench info`)")
    p.add_argument("--quick", action="store_true", help="same as --preset quick (minutes on 2 CPU cores)")
    p.add_argument(
        "--seed", type=_seed, default=0, help="root seed in 0 … 2**63-1 (default 0); distinct seeds, distinct keys"
    )
    p.add_argument("--out", help="run directory (default runs/<task>-seed<N>[-quick])")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out, keeping finished parts")
    p.add_argument("--data", help="a real data file in the task's published format (default: the embedded generator)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, a dotted path or a unique field name (repeatable; see `jaxbench info`)",
    )
    p.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="NAME",
        help="also run a structural-interpretation study after the benchmark (repeatable, "
        "comma lists, or 'all'; see `jaxbench info`)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(fn=_cmd_run)

    p = commands.add_parser(
        "report",
        help="re-create report.html of a run directory",
        description="Re-create the plots and report.html of a finished run from its stored arrays.",
    )
    p.add_argument("run_dir")
    p.set_defaults(fn=_cmd_report)

    p = commands.add_parser(
        "compare",
        help="compare the metrics of several runs",
        description="Print the metrics of several run directories side by side.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.set_defaults(fn=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command. Exit codes: 0 done, 2 bad input (one line), 3 a run whose results are not
    finite, 130 Ctrl-C (one line with the resume command), 1 an unexpected error (one line and the
    path of the log holding its traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except JaxbenchError as error:
        print(f"jaxbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        words = list(sys.argv[1:] if argv is None else argv)
        again = " ".join(shlex.quote(w) for w in (words if "--resume" in words else [*words, "--resume"]))
        hint = f"; continue with: jaxbench {again}" if args.command == "run" else ""
        print(f"\njaxbench: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: one line here, the traceback in a log
        log = _write_traceback(args)
        print(
            f"jaxbench: internal error: {type(error).__name__}: {error} (traceback in {log}); please report it.",
            file=sys.stderr,
        )
        return 1


def _write_traceback(args: argparse.Namespace) -> Path:
    text = traceback.format_exc()
    out = getattr(args, "resolved_out", None)
    candidates = [Path(out) / "error.log"] if out and Path(out).is_dir() else []
    candidates.append(Path(tempfile.gettempdir()) / f"jaxbench-error-{os.getpid()}.log")
    for path in candidates:
        try:
            path.write_text(text)
            return path
        except OSError:
            continue
    return candidates[-1]


if __name__ == "__main__":
    sys.exit(main())
