"""A table of bad inputs, tried through the ``jaxbench run`` command, for every task.

Each row runs the command in this process (``jaxbench.cli.main``, as a user's shell would, with
``--no-progress``) and checks what a user sees and what is left on disk:

- expected **error**: exit code 2 with one line of ``jaxbench: error: ...`` (argparse's usage
  line plus its error line for bad flags), no traceback, and a run directory that is absent,
  untouched (a refused resume), or marked ``error``/``failed`` so a plain rerun replaces it;
- expected **failed**: non-finite results: exit code 3, the run marked ``failed``, said first
  in ``summary.txt``;
- expected **ok**: exit code 0 and status ``complete``.

    python scripts/try_bad_inputs.py [--task ID ...] [--markdown FILE]

Exit code 1 if any row is not as expected. Several minutes on 2 CPU cores (the ``ok`` rows run
each task's tiny preset end to end; the MD trajectory of mlff is cached under $JAXBENCH_CACHE).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

import jaxbench
from jaxbench import cli, rundir

TINY = ("--preset", "tiny", "--no-progress")


@dataclass
class Case:
    task: str
    name: str
    args: Callable[[Path], list[str]]  # the command line after `run TASK`, given a scratch directory
    expect: str = "error"  # "error", "failed" or "ok"
    before: Callable[[Path], None] | None = None  # prepares the scratch directory (files, a finished run)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(args)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def run_state(out: Path, before: str | None) -> str:
    if not out.exists():
        return "absent"
    if not out.is_dir():
        return "untouched"  # --out named a file: it is left as it was
    manifest = out / rundir.MANIFEST
    if not manifest.exists():
        return "no manifest" if any(p.name != rundir.LOCK for p in out.iterdir()) else "empty"
    text = manifest.read_text()
    if before is not None and text == before:
        return "untouched"
    return f"status={json.loads(text).get('status')}"


def verdict(case: Case, code: int, err: str, state: str, out: Path) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err:
        return False
    if case.expect == "ok":
        return code == 0 and state == "status=complete"
    if case.expect == "failed":
        summary = out / "summary.txt"
        return code == 3 and state == "status=failed" and summary.read_text().startswith("FAILED:")
    one_line = len(lines) == 1 and lines[0].startswith("jaxbench: error: ")
    argparse_line = len(lines) >= 2 and lines[0].startswith("usage:") and ": error: " in lines[-1]
    return code == 2 and (one_line or argparse_line) and state in ("absent", "untouched", "status=error", "empty")


# -- data files in each task's published format, and edits of them ------------------------------------
def valid_file(task_id: str, scratch: Path) -> Path:
    """A small valid file written by the task's own ``save`` from its tiny generated data (cached)."""
    cache = Path(tempfile.gettempdir()) / "jaxbench-bad-inputs" / task_id
    if not cache.exists():
        task = jaxbench.make(task_id, "tiny")
        data = task.generate(jax.random.key(3), task.config)
        tmp = cache.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        written = task.save(tmp / "data", data, task.config)
        (tmp / "which").write_text(str(written.relative_to(tmp)))
        tmp.rename(cache)
    if not (scratch / "valid").exists():  # copied once per row: a row's edits stay
        shutil.copytree(cache, scratch / "valid")
    return scratch / "valid" / (cache / "which").read_text()


def data_file(task_id: str, path: Path) -> Path:
    """The one file inside what ``--data`` points at (mlff's rMD17 folder holds npz_data/...)."""
    task = jaxbench.make(task_id, "tiny")
    return Path(task.data_files(path)[0]) if task.data_files is not None else path


def edit_file(task_id: str, how: Callable[[Path], None]) -> Callable[[Path], None]:
    def before(scratch: Path) -> None:
        how(data_file(task_id, valid_file(task_id, scratch)))

    return before


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def corrupt(file: Path) -> None:
    raw = bytearray(file.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 256] = os.urandom(256)
    file.write_bytes(bytes(raw))


def npz_edit(fn: Callable[[dict], dict]) -> Callable[[Path], None]:
    def how(file: Path) -> None:
        with np.load(file, allow_pickle=False) as npz:
            arrays = dict(npz)
        with open(file, "wb") as f:
            np.savez(f, **fn(arrays))

    return how


def parquet_edit(fn: Callable) -> Callable[[Path], None]:
    def how(file: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(fn(pq.read_table(file)), file)

    return how


def set_column(table, name, values):
    import pyarrow as pa

    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def with_nan(arrays: dict, key: str) -> dict:
    values = arrays[key].astype(np.float64)
    values.flat[0] = np.nan
    return {**arrays, key: values}


# -- the cases ---------------------------------------------------------------------------------------
def general_cases() -> list[Case]:
    """Flags, seeds, --out and resume: task-independent, tried on the fast example task."""
    task = "oscillator-v0"

    def finished(scratch: Path) -> None:
        code, _, err = run_cli(["run", task, *TINY, "--out", str(scratch / "run")])
        assert code == 0, err

    def unfinished(scratch: Path) -> None:
        finished(scratch)
        manifest = json.loads((scratch / "run" / rundir.MANIFEST).read_text())
        manifest["status"] = "error"
        (scratch / "run" / rundir.MANIFEST).write_text(json.dumps(manifest))

    def regular_file(scratch: Path) -> None:
        (scratch / "file").write_text("not a directory")

    out = lambda s: ["--out", str(s / "run")]  # noqa: E731
    return [
        Case("nosuch-v0", "unknown task id", lambda s: [*TINY, *out(s)]),
        Case(task, "unknown flag", lambda s: [*TINY, "--frobnicate", *out(s)]),
        Case(task, "--set without '='", lambda s: [*TINY, "--set", "n_test", *out(s)]),
        Case(task, "--set unknown key (typo)", lambda s: [*TINY, "--set", "n_tset=5", *out(s)]),
        Case(task, "--set value of the wrong type", lambda s: [*TINY, "--set", "n_test=abc", *out(s)]),
        Case(task, "--set NaN noise", lambda s: [*TINY, "--set", "noise_sigma=nan", *out(s)]),
        Case(task, "--set zero training set", lambda s: [*TINY, "--set", "n_train=0", *out(s)]),
        Case(task, "unknown preset", lambda s: ["--preset", "huge", "--no-progress", *out(s)]),
        Case(task, "unknown study", lambda s: [*TINY, "--study", "nosuch", *out(s)]),
        Case(task, "negative seed", lambda s: [*TINY, "--seed", "-1", *out(s)]),
        Case(task, "seed 2**63", lambda s: [*TINY, "--seed", str(2**63), *out(s)]),
        Case(task, "seed not an integer", lambda s: [*TINY, "--seed", "abc", *out(s)]),
        Case(task, "seed 2**63-1", lambda s: [*TINY, "--seed", str(2**63 - 1), *out(s)], "ok"),
        Case(task, "--out is a file", lambda s: [*TINY, "--out", str(s / "file")], before=regular_file),
        Case(task, "--out inside a file", lambda s: [*TINY, "--out", str(s / "file" / "run")], before=regular_file),
        Case(task, "--out not writable", lambda s: [*TINY, "--out", "/sys/jaxbench-bad-inputs"]),
        Case(task, "--data missing", lambda s: [*TINY, "--data", str(s / "missing.npz"), *out(s)]),
        Case(task, "finished run, no --resume", lambda s: [*TINY, *out(s)], before=finished),
        Case(task, "--resume, another seed", lambda s: [*TINY, "--seed", "1", "--resume", *out(s)], before=finished),
        Case(task, "--resume, another config", lambda s: [*TINY, "--set", "n_test=40", "--resume", *out(s)],
             before=finished),
        Case(task, "--resume, other data", lambda s: [*TINY, "--resume", "--data", str(valid_file(task, s)), *out(s)],
             before=finished),
        Case(task, "--resume of a finished run", lambda s: [*TINY, "--resume", *out(s)], "ok", before=finished),
        Case(task, "unfinished run, plain rerun", lambda s: [*TINY, *out(s)], "ok", before=unfinished),
        Case(task, "another process holds the lock", lambda s: [*TINY, *out(s)], before=lambda s: hold_lock(s)),
    ]  # fmt: skip


_HELD: list = []


def hold_lock(scratch: Path) -> None:
    (scratch / "run").mkdir()
    lock = rundir.RunLock(scratch / "run")
    lock.acquire()
    _HELD.append(lock)


def loader_cases(task: str, edits: dict[str, Callable[[Path], None]], extra: list[Case]) -> list[Case]:
    """Missing, empty, text, truncated and corrupted files, the task's own edits, and the valid file."""
    data = lambda s: [*TINY, "--data", str(valid_file(task, s)), "--out", str(s / "run")]  # noqa: E731
    cases = [
        Case(task, "valid file", data, "ok", before=lambda s: valid_file(task, s)),
        Case(task, "empty file", data, before=edit_file(task, lambda f: f.write_bytes(b""))),
        Case(task, "text file", data, before=edit_file(task, lambda f: f.write_text("energy,forces\n1,2\n"))),
        Case(task, "truncated file", data, before=edit_file(task, truncate)),
        Case(task, "corrupted bytes", data, before=edit_file(task, corrupt)),
    ]
    cases += [Case(task, name, data, before=edit_file(task, how)) for name, how in edits.items()]
    return cases + extra


def oscillator_cases() -> list[Case]:
    task = "oscillator-v0"
    edits = {
        "missing key 'x'": npz_edit(lambda a: {k: v for k, v in a.items() if k != "x"}),
        "strings in 'omega0'": npz_edit(lambda a: {**a, "omega0": a["omega0"].astype(str)}),
        "wrong shape of 'x'": npz_edit(lambda a: {**a, "x": a["x"][:, :, None]}),
        "NaN in 'x'": npz_edit(lambda a: with_nan(a, "x")),
    }
    return loader_cases(task, edits, [])


def fair_universe_cases() -> list[Case]:
    task = "fair_universe-v0"
    edits = {
        "missing column PRI_met": parquet_edit(lambda t: t.drop(["PRI_met"])),
        "strings in PRI_met": parquet_edit(lambda t: set_column(t, "PRI_met", t["PRI_met"].to_numpy().astype(str))),
        "NaN in PRI_met": parquet_edit(lambda t: set_column(t, "PRI_met", np.where(np.arange(len(t)) == 0, np.nan,
                                                                                   t["PRI_met"].to_numpy()))),
        "negative weights": parquet_edit(lambda t: set_column(t, "weights", -t["weights"].to_numpy())),
        "unknown labels": parquet_edit(lambda t: set_column(t, "labels", t["labels"].to_numpy() + 7)),
        "0 rows": parquet_edit(lambda t: t.slice(0, 0)),
        "2,000 rows": parquet_edit(lambda t: t.slice(0, 2000)),
    }  # fmt: skip
    extra = [
        Case(task, "--set learning_rate=nan", lambda s: [*TINY, "--set", "learning_rate=nan", "--out", str(s / "r")]),
        Case(task, "--set hidden= (empty)", lambda s: [*TINY, "--set", "hidden=", "--out", str(s / "r")]),
    ]
    return loader_cases(task, edits, extra)


def mlff_cases() -> list[Case]:
    task = "mlff_aspirin-v0"
    edits = {
        "missing key 'forces'": npz_edit(lambda a: {k: v for k, v in a.items() if k != "forces"}),
        "strings in 'energies'": npz_edit(lambda a: {**a, "energies": a["energies"].astype(str)}),
        "wrong shape of 'coords'": npz_edit(lambda a: {**a, "coords": a["coords"][:, :, :2]}),
        "NaN in 'forces'": npz_edit(lambda a: with_nan(a, "forces")),
        "forces in eV/Å": npz_edit(lambda a: {**a, "forces": a["forces"] / 23.0605}),
    }
    out = lambda s: ["--out", str(s / "r")]  # noqa: E731
    extra = [
        Case(task, "--set learning_rate=nan", lambda s: [*TINY, "--set", "learning_rate=nan", *out(s)]),
        Case(task, "split=published, no --data", lambda s: [*TINY, "--set", "data.split=published", *out(s)]),
        Case(task, "train_frames beyond the pool", lambda s: [*TINY, "--set", "data.train_frames=100000", *out(s)]),
    ]
    return loader_cases(task, edits, extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", action="append", help="only these task ids (default: all)")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    cases = general_cases() + oscillator_cases() + fair_universe_cases() + mlff_cases()
    if args.task:
        cases = [c for c in cases if c.task in args.task or (c.task == "nosuch-v0" and "oscillator-v0" in args.task)]
    os.environ.setdefault("JAXBENCH_CACHE", str(Path(tempfile.gettempdir()) / "jaxbench-bad-inputs" / "cache"))
    rows, bad = [], 0
    for case in cases:
        scratch = Path(tempfile.mkdtemp(prefix="bad-input-"))
        try:
            if case.before is not None:
                case.before(scratch)
            argv = ["run", case.task, *case.args(scratch)]
            out = next((Path(argv[i + 1]) for i, a in enumerate(argv) if a == "--out"), scratch / "none")
            manifest = out / rundir.MANIFEST
            before = manifest.read_text() if manifest.exists() else None
            code, _, err = run_cli(argv)
            state = run_state(out, before)
            good = verdict(case, code, err, state, out)
            message = next((line for line in reversed(err.splitlines()) if line.strip()), "")
        finally:
            while _HELD:
                _HELD.pop().release()
            shutil.rmtree(scratch, ignore_errors=True)
        bad += not good
        rows.append((case.task, case.name, case.expect, str(code), state, message[:150], "yes" if good else "NO"))
        print(
            f"{'ok ' if good else 'BAD'} {case.task:18s} {case.name:34s} exit {code} {state:14s} {message[:110]}",
            flush=True,
        )
    header = ("task", "input", "expected", "exit", "directory after", "what the user sees", "as expected")
    table = "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                      for row in [header, tuple("---" for _ in header), *rows])  # fmt: skip
    print(f"\n{len(rows) - bad} of {len(rows)} rows as expected")
    if args.markdown:
        Path(args.markdown).write_text(table + f"\n\n{len(rows) - bad} of {len(rows)} rows as expected.\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
