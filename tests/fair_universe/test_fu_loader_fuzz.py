"""Fuzzing the fair_universe parquet loader: every truncated or edited copy of a valid file either
loads exactly what it holds or fails with a one-line DataFormatError / ConfigError naming the file."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.registry import spec
from jaxbench.tasks.fair_universe import checks, schema
from jaxbench.tasks.fair_universe.io import COLUMNS, load_parquet, metadata_path_for, write_parquet

ROWS = 64
FLOAT_COLUMNS = COLUMNS[:-2]  # features and weights (labels and detailed_labels are not floats)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def original():
    """(folder, loaded data) of a valid 64-row file in the release's layout."""
    rng = np.random.default_rng(7)
    pri = rng.uniform(20, 80, (ROWS, len(schema.PRI_COLUMNS))).astype(np.float32)
    pri[:, schema.PRI["PRI_n_jets"]] = rng.integers(0, 3, ROWS)
    process = rng.integers(0, len(schema.PROCESSES), ROWS).astype(np.int32)
    pool = schema.EventPool(pri, rng.exponential(1.0, ROWS).astype(np.float32), process)
    der = rng.normal(0, 1, (ROWS, len(schema.DER_COLUMNS))).astype(np.float32)
    folder = Path(tempfile.mkdtemp(prefix="fu-fuzz-"))
    write_parquet(folder / "events.parquet", pool, der)
    yield folder, load_parquet(folder / "events.parquet")
    shutil.rmtree(folder)


def _column(table, name, values):
    return table.set_column(table.schema.get_field_index(name), name, values)


# Each edit: (description, table -> table or None for a byte edit, whether it keeps the data).
def edits():
    column = st.sampled_from(COLUMNS)
    rows = st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=5, unique=True)
    return st.one_of(
        st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
        st.tuples(st.just("drop"), column),
        st.tuples(st.just("rename"), column, st.sampled_from(["x", "PRI_met ", "pri_met", "weight"])),
        st.tuples(st.just("string"), column),
        st.tuples(st.just("nan"), st.sampled_from(FLOAT_COLUMNS), rows),
        st.tuples(st.just("negative_weight"), rows, st.floats(-1e3, -1e-3)),
        st.tuples(st.just("extra_column"), st.sampled_from(["EventId", "notes"])),
        st.tuples(st.just("reorder"), st.randoms(use_true_random=False)),
        st.tuples(st.just("float64"), st.sampled_from(FLOAT_COLUMNS)),
    )


def apply(edit, table):
    """The edited table and whether the edit keeps the events' values."""
    kind, *args = edit
    if kind == "drop":
        return table.drop_columns([args[0]]), False
    if kind == "rename":
        return table.rename_columns([args[1] if n == args[0] else n for n in table.column_names]), False
    if kind == "string":
        return _column(table, args[0], pc.cast(table.column(args[0]), pa.string())), args[0] == "detailed_labels"
    if kind == "nan":
        values = table.column(args[0]).to_numpy().copy()
        values[args[1]] = np.nan
        return _column(table, args[0], pa.array(values)), False
    if kind == "negative_weight":
        values = table.column("weights").to_numpy().copy()
        values[args[0]] = args[1]
        return _column(table, "weights", pa.array(values, pa.float32())), False
    if kind == "extra_column":
        return table.append_column(args[0], pa.array(np.arange(ROWS))), True
    if kind == "reorder":
        names = list(table.column_names)
        args[0].shuffle(names)
        return table.select(names), True
    if kind == "float64":
        return _column(table, args[0], pc.cast(table.column(args[0]), pa.float64())), True
    raise AssertionError(kind)


def assert_same(loaded, original):
    for name in ("pri", "weights", "process"):
        np.testing.assert_array_equal(getattr(loaded.pool, name), getattr(original.pool, name))
    np.testing.assert_array_equal(loaded.der, original.der)


@FUZZ
@given(edit=edits())
def test_an_edited_file_loads_exactly_or_fails_in_one_line(original, edit):
    folder, reference = original
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        shutil.copy(metadata_path_for(folder / "events.parquet"), metadata_path_for(path))
        if edit[0] == "truncate":
            content = (folder / "events.parquet").read_bytes()
            path.write_bytes(content[: int(edit[1] * len(content))])
            keeps = False
        else:
            table, keeps = apply(edit, pq.read_table(folder / "events.parquet"))
            pq.write_table(table, path)
        config = spec("fair_universe-v0").resolve_config("tiny", batch_size=8, n_bins=2)
        try:
            checks.validate(config, path)
            loaded = load_parquet(path)
        except (DataFormatError, ConfigError) as error:
            text = str(error)
            assert "\n" not in text and "events" in text, text
            assert not keeps, f"{edit} keeps the data but failed: {text}"
            return
        assert keeps, f"{edit} changes the data but loaded"
        assert_same(loaded, reference)


@FUZZ
@given(position=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_a_corrupted_byte_never_escapes_as_a_raw_error(original, position, byte):
    folder, reference = original
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        shutil.copy(metadata_path_for(folder / "events.parquet"), metadata_path_for(path))
        content = bytearray((folder / "events.parquet").read_bytes())
        content[position % len(content)] = byte
        path.write_bytes(bytes(content))
        try:
            loaded = load_parquet(path)
        except DataFormatError as error:
            assert "\n" not in str(error) and "events" in str(error)
            return
        if bytes(content) == (folder / "events.parquet").read_bytes():
            assert_same(loaded, reference)
