"""Reading and writing FAIR Universe parquet files in the public release's layout."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jaxbench.errors import DataFormatError
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.io import COLUMNS, load_parquet, metadata_path_for, write_parquet

JET = {
    name: schema.PRI[f"PRI_jet_{name}"]
    for name in (
        "leading_pt",
        "leading_eta",
        "leading_phi",
        "subleading_pt",
        "subleading_eta",
        "subleading_phi",
        "all_pt",
    )
}


def random_events(n=300, seed=0):
    """Valid random events: jets missing (-25) where PRI_n_jets says so."""
    rng = np.random.default_rng(seed)
    pri = rng.normal(0, 1, (n, len(schema.PRI_COLUMNS))).astype(np.float32)
    n_jets = rng.integers(0, 4, n)
    pri[:, schema.PRI["PRI_n_jets"]] = n_jets
    for name in ("leading_pt", "leading_eta", "leading_phi"):
        pri[n_jets < 1, JET[name]] = schema.MISSING
    for name in ("subleading_pt", "subleading_eta", "subleading_phi"):
        pri[n_jets < 2, JET[name]] = schema.MISSING
    pri[n_jets == 0, JET["all_pt"]] = 0.0
    der = rng.normal(0, 1, (n, len(schema.DER_COLUMNS))).astype(np.float32)
    weights = rng.exponential(2.0, n).astype(np.float32)
    process = rng.integers(0, len(schema.PROCESSES), n).astype(np.int32)
    return schema.EventPool(pri=pri, weights=weights, process=process), der


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "train.parquet"
    pool, der = random_events()
    write_parquet(path, pool, der, {"source": "test"})
    return path, pool, der


def _rewrite(path, change):
    """Apply change(table) -> table to the parquet file in place (metadata json untouched)."""
    pq.write_table(change(pq.read_table(path)), path)


def _set(name, values):
    def change(table):
        return table.set_column(table.schema.get_field_index(name), name, values(table))

    return change


def _with(name, rows, value):
    """Column ``name`` with ``value`` at ``rows``, same dtype."""

    def values(table):
        array = table.column(name).to_numpy().copy()
        array[rows] = value
        return pa.array(array, table.schema.field(name).type)

    return _set(name, values)


def test_round_trip_is_exact(written):
    path, pool, der = written
    loaded = load_parquet(path)
    np.testing.assert_array_equal(loaded.pool.pri, pool.pri)
    np.testing.assert_array_equal(loaded.pool.weights, pool.weights)
    np.testing.assert_array_equal(loaded.pool.process, pool.process)
    np.testing.assert_array_equal(loaded.der, der)
    assert loaded.pool.pri.dtype == np.float32 and loaded.pool.process.dtype == np.int32
    no_jet = loaded.pool.pri[:, schema.PRI["PRI_n_jets"]] == 0
    assert no_jet.any() and (loaded.pool.pri[no_jet, JET["leading_pt"]] == schema.MISSING).all()
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.metadata["source"] == "test"
    assert loaded.metadata["luminosity"] == schema.LUMINOSITY_FB
    assert loaded.metadata["total_rows"] == pool.num_events
    assert loaded.metadata["sum_weights"] == pytest.approx(pool.weights.sum(dtype=np.float64))


def test_written_file_has_exactly_the_published_columns(written):
    path, pool, _ = written
    table = pq.read_table(path)
    assert tuple(table.column_names) == COLUMNS and len(COLUMNS) == 31
    assert set(table.column("detailed_labels").to_pylist()) <= set(schema.PROCESSES)
    np.testing.assert_array_equal(table.column("labels").to_numpy(), pool.labels)
    assert metadata_path_for(path).name == "train_metadata.json"


def test_loads_pandas_style_dtypes(written):
    """float64 features, int64 labels and dictionary-encoded strings are read the same."""
    path, pool, der = written

    def widen(table):
        fields = [
            pa.field(f.name, pa.float64())
            if pa.types.is_float32(f.type)
            else pa.field(f.name, pa.int64())
            if f.name == "labels"
            else pa.field(f.name, pa.dictionary(pa.int8(), pa.string()))
            for f in table.schema
        ]
        return table.cast(pa.schema(fields))

    _rewrite(path, widen)
    loaded = load_parquet(path)
    np.testing.assert_array_equal(loaded.pool.pri, pool.pri)
    np.testing.assert_array_equal(loaded.pool.process, pool.process)
    np.testing.assert_array_equal(loaded.der, der)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda t: t.drop_columns(["PRI_met"]), ["train.parquet", "'PRI_met'", "found:", "31"]),
        (_set("PRI_lep_pt", lambda t: pc.cast(t.column("PRI_lep_pt"), pa.string())), ["'PRI_lep_pt'", "dtype string"]),
        (_with("DER_mass_vis", [3, 7], np.nan), ["'DER_mass_vis'", "2 NaN or infinite"]),
        (_with("weights", [5], np.inf), ["'weights'", "1 NaN or infinite"]),
        (
            _set("PRI_had_eta", lambda t: pa.array([None] + t.column("PRI_had_eta").to_pylist()[1:], pa.float32())),
            ["'PRI_had_eta'", "1 null"],
        ),
        (_with("weights", [0, 1, 2], -1.0), ["'weights'", "3 negative"]),
        (_with("PRI_n_jets", [4], 1.5), ["'PRI_n_jets'", "1 values"]),
        (
            _set("detailed_labels", lambda t: pa.array(["wjets"] + t.column("detailed_labels").to_pylist()[1:])),
            ["'detailed_labels'", "wjets", "htautau"],
        ),
        (_set("labels", lambda t: pc.subtract(1, t.column("labels"))), ["'labels'", "300 rows", "first: row 0"]),
        (_set("labels", lambda t: pc.cast(t.column("labels"), pa.string())), ["'labels'", "dtype string"]),
    ],
    ids=[
        "missing-column",
        "string-feature",
        "nan-feature",
        "inf-weight",
        "null",
        "negative-weight",
        "fractional-n-jets",
        "unknown-process",
        "labels-disagree",
        "string-labels",
    ],
)
def test_bad_file_names_the_field(written, change, expected):
    path, _, _ = written
    _rewrite(path, change)
    with pytest.raises(DataFormatError) as err:
        load_parquet(path)
    for text in expected:
        assert text in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "train.parquet"
    with pytest.raises(DataFormatError, match="does not exist") as err:
        load_parquet(path)
    assert str(path) in str(err.value)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_text("EventId,PRI_met\n1,2\n")
    with pytest.raises(DataFormatError, match="train.parquet is not a readable parquet file"):
        load_parquet(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, ["train_metadata.json does not exist", '"sum_weights"']),
        ("{not json", ["train_metadata.json is not valid json"]),
        ({"luminosity": 10}, ["no key 'sum_weights'", "found: luminosity", "sumWeights"]),
        ({"sum_weights": "scaled"}, ["sum_weights = ", "sum to"]),
        ({"sum_weights": "wrong-total"}, ["total_rows = 299", "has 300 rows"]),
    ],
    ids=["missing", "invalid-json", "no-sum-weights", "sum-weights-mismatch", "rows-mismatch"],
)
def test_bad_metadata_names_the_key(written, content, expected):
    path, pool, _ = written
    metadata = metadata_path_for(path)
    total = float(pool.weights.sum(dtype=np.float64))
    if content is None:
        metadata.unlink()
    elif isinstance(content, str):
        metadata.write_text(content)
    elif content.get("sum_weights") == "scaled":
        metadata.write_text(json.dumps({"sum_weights": total * 1.01}))
    elif content.get("sum_weights") == "wrong-total":
        metadata.write_text(json.dumps({"sum_weights": total, "total_rows": 299}))
    else:
        metadata.write_text(json.dumps(content))
    with pytest.raises(DataFormatError) as err:
        load_parquet(path)
    for text in expected:
        assert text in str(err.value)


def test_sum_weights_tolerance_is_relative_1e6(written):
    path, pool, _ = written
    total = float(pool.weights.sum(dtype=np.float64))
    metadata_path_for(path).write_text(json.dumps({"sum_weights": total * (1 + 5e-7)}))
    assert load_parquet(path).metadata["sum_weights"] == total * (1 + 5e-7)
    metadata_path_for(path).write_text(json.dumps({"sum_weights": total * (1 + 2e-6)}))
    with pytest.raises(DataFormatError, match="sum_weights"):
        load_parquet(path)


def test_croissant_style_metadata_and_explicit_path(written, tmp_path):
    path, pool, _ = written
    card = tmp_path / "data.croissant.json"
    properties = {
        "sumWeights": float(pool.weights.sum(dtype=np.float64)),
        "luminosity": 139,
        "totalRows": pool.num_events,
    }
    card.write_text(json.dumps({"croissant": {"dataProperties": properties}}))
    metadata = load_parquet(path, metadata_path=card).metadata
    assert metadata["luminosity"] == 139.0 and metadata["total_rows"] == pool.num_events


def test_write_rejects_arrays_in_the_wrong_layout(tmp_path):
    pool, der = random_events(n=10)
    with pytest.raises(DataFormatError, match=r"der has shape \(10, 11\), expected \(10, 12\)"):
        write_parquet(tmp_path / "x.parquet", pool, der[:, :11])
    bad = schema.EventPool(pool.pri, pool.weights, np.full(10, 7, np.int32))
    with pytest.raises(DataFormatError, match="pool.process"):
        write_parquet(tmp_path / "x.parquet", bad, der)
