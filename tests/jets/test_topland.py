"""The TopLandscape readers and writers, on tiny files in the published layouts written independently here.

The h5 files are built with pandas' own ``to_hdf(format="table", key="table")`` from column names spelled out in
this file; the parquet files with awkward and vector, as the Particle Transformer conversion script does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.jets import schema, topland

N_JETS = 12
SLOTS = 200


def random_jets(seed: int = 0, n: int = N_JETS, slots: int = SLOTS, most: int = 60) -> schema.Jets:
    """Jets of 1..most constituents of E slightly above |p| around a random axis, pT-ordered, zero-padded to ``slots``.

    Jet axes alternate in the sign of eta, and jet 0 sits at phi 3.1, so that its constituents straddle +-pi.
    """
    rng = np.random.default_rng(seed)
    p4 = np.zeros((n, slots, 4), np.float32)
    for i, count in enumerate(rng.integers(1, most + 1, n)):
        pt = np.sort(rng.exponential(30.0, count))[::-1] + 0.5
        axis_eta, axis_phi = (-1) ** i * rng.uniform(0.2, 1.5), 3.1 if i == 0 else rng.uniform(-np.pi, np.pi)
        eta, phi = rng.normal(axis_eta, 0.2, count), rng.normal(axis_phi, 0.2, count)
        p4[i, :count] = np.stack([pt * np.cosh(eta) + 0.01, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], -1)
    label = rng.integers(0, 2, n).astype(np.int32)
    truth = (rng.normal(0, 300, (n, 4)) * label[:, None]).astype(np.float32)
    return schema.Jets(p4, label, truth, np.full(n, 1, np.int32))


def published_frame(jets: schema.Jets) -> pd.DataFrame:
    """The 806-column table of the dataset card: E_i, PX_i, PY_i, PZ_i interleaved, truth, ttv, is_signal_new."""
    columns = {}
    for i in range(200):
        for q, name in enumerate(("E", "PX", "PY", "PZ")):
            columns[f"{name}_{i}"] = jets.p4[:, i, q].astype(np.float32)
    for q, name in enumerate(("truthE", "truthPX", "truthPY", "truthPZ")):
        columns[name] = jets.truth_p4[:, q].astype(np.float32)
    columns["ttv"] = jets.ttv.astype(np.int64)
    columns["is_signal_new"] = jets.label.astype(np.int64)
    return pd.DataFrame(columns)


def write_published_h5(path, jets: schema.Jets | None = None, frame: pd.DataFrame | None = None, key="table", **kw):
    frame = published_frame(random_jets() if jets is None else jets) if frame is None else frame
    frame.to_hdf(path, key=key, format=kw.pop("format", "table"), mode="w", **kw)
    return path


def conversion_record(jets: schema.Jets) -> dict:
    """The fields convert_top_datasets.py writes, computed with vector from the E > 0 constituents."""
    ak = pytest.importorskip("awkward")
    vector = pytest.importorskip("vector")
    vector.register_awkward()
    mask = jets.p4[..., 0] > 0
    counts = mask.sum(axis=1)
    e, px, py, pz = (ak.unflatten(jets.p4[..., q][mask], counts) for q in range(4))
    p4 = vector.zip({"px": px, "py": py, "pz": pz, "energy": e})
    jet = ak.sum(p4, axis=1)
    sign = np.sign(ak.to_numpy(jet.eta))
    sign[sign == 0] = 1
    return {
        "label": jets.label.astype(np.int64),
        "jet_pt": jet.pt,
        "jet_eta": jet.eta,
        "jet_phi": jet.phi,
        "jet_energy": jet.energy,
        "jet_mass": jet.mass,
        "jet_nparticles": counts.astype(np.int64),
        "part_px": px,
        "part_py": py,
        "part_pz": pz,
        "part_energy": e,
        "part_deta": (p4.eta - jet.eta) * sign,
        "part_dphi": p4.deltaphi(jet),
    }


def write_conversion_parquet(path, jets: schema.Jets | None = None, record: dict | None = None):
    import awkward as ak

    record = conversion_record(random_jets() if jets is None else jets) if record is None else record
    ak.to_parquet(ak.Array(record), path, compression="LZ4", compression_level=4)
    return path


def assert_same_jets(got: schema.Jets, want: schema.Jets, ttv=True, truth=True):
    np.testing.assert_allclose(got.p4, want.p4, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got.label, want.label)
    assert got.p4.dtype == np.float32 and got.label.dtype == np.int32 and got.ttv.dtype == np.int32
    if truth:
        np.testing.assert_allclose(got.truth_p4, want.truth_p4, rtol=1e-6)
    if ttv:
        np.testing.assert_array_equal(got.ttv, want.ttv)


# ---------------------------------------------------------------------------------------------------------- h5


@pytest.mark.parametrize("shuffled", [False, True])
def test_reads_the_published_h5_table(tmp_path, shuffled):
    jets = random_jets()
    frame = published_frame(jets)
    if shuffled:  # columns are found by name, not position
        frame = frame[list(np.random.default_rng(1).permutation(frame.columns))]
    got = topland.read_h5(write_published_h5(tmp_path / "train.h5", frame=frame))
    assert got.p4.shape == (N_JETS, 200, 4)
    assert_same_jets(got, jets)


def test_chunked_h5_read_equals_one_shot_and_limit_takes_the_first_rows(tmp_path):
    path = write_published_h5(tmp_path / "val.h5")
    whole = topland.read_h5(path)
    for chunked, want in ((topland.read_h5(path, chunk_rows=5), whole), (topland.read_h5(path, limit=7), None)):
        want = want or schema.take(whole, np.arange(7))
        for a, b in zip(chunked, want):
            np.testing.assert_array_equal(a, b)


def test_h5_keeps_the_leading_max_particles(tmp_path):
    jets = random_jets()
    got = topland.read_h5(write_published_h5(tmp_path / "test.h5", jets), max_particles=7)
    assert got.p4.shape == (N_JETS, 7, 4)
    np.testing.assert_array_equal(got.p4, jets.p4[:, :7])


def test_h5_writer_round_trips_in_the_published_layout(tmp_path):
    jets = random_jets(slots=30, most=30)
    path = topland.write_h5(tmp_path / "train.h5", jets)
    frame = pd.read_hdf(path, key="table")
    assert tuple(frame.columns) == schema.COLUMNS
    assert set(frame.dtypes.iloc[:804].astype(str)) == {"float32"}
    assert frame["ttv"].dtype == np.int64 and frame["is_signal_new"].dtype == np.int64
    assert frame["E_30"].eq(0).all() and frame["PZ_199"].eq(0).all()  # padded to 200 slots
    got = topland.read_h5(path, max_particles=30, chunk_rows=4)
    assert_same_jets(got, jets)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_h5_writer_truncates_to_200_slots(tmp_path):
    jets = random_jets(n=3, slots=210, most=210)
    got = topland.read_h5(topland.write_h5(tmp_path / "t.h5", jets))
    np.testing.assert_array_equal(got.p4, jets.p4[:, :200])


def test_failed_h5_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = topland.write_h5(tmp_path / "train.h5", random_jets(n=2))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.HDFStore, "append", broken)
    with pytest.raises(OSError):
        topland.write_h5(path, random_jets(n=3))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]


def test_writers_refuse_jets_they_cannot_store(tmp_path):
    with pytest.raises(DataFormatError, match="write_h5: no jets"):
        topland.write_h5(tmp_path / "train.h5", schema.empty_jets())
    jets = random_jets(n=3)
    for write in (topland.write_h5, topland.write_parquet):
        with pytest.raises(DataFormatError, match=r"jets.label has shape \(2,\), expected \(3,\)"):
            write(tmp_path / "x", jets._replace(label=jets.label[:2]))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sizes", [{"max_particles": 0}, {"max_particles": 201}, {"chunk_rows": 0}, {"limit": -1}])
def test_reader_sizes_out_of_range_are_config_errors(tmp_path, sizes):
    with pytest.raises(ConfigError, match=next(iter(sizes))):
        topland.read_h5(tmp_path / "train.h5", **sizes)


def test_empty_slots_lose_stray_momentum(tmp_path):
    jets = random_jets(n=2, most=5)
    frame = published_frame(jets)
    frame.loc[0, "PX_150"] = 3.0  # E_150 = 0: no particle, as the conversion's E > 0 mask reads it
    got = topland.read_h5(write_published_h5(tmp_path / "x.h5", frame=frame))
    np.testing.assert_array_equal(got.p4, jets.p4)


def _edit(column, row, value):
    def edit(frame):
        frame.loc[row, column] = value
        return frame

    return edit


def _gap(frame):
    frame.loc[3, [f"{q}_{i}" for q in ("E", "PX", "PY", "PZ") for i in (0, 1)]] = 0.0  # slots 0, 1 empty, 2 not
    return frame


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda f: f.drop(columns=["PZ_17", "truthE"]), "lacks column(s) PZ_17, truthE"),
        (_edit("E_3", 4, np.nan), "row 4 has a NaN or infinite constituent"),
        (_edit("PY_150", 5, np.inf), "row 5 has a NaN or infinite constituent"),
        (_edit("truthPX", 6, np.nan), "row 6 has a NaN or infinite truth"),
        (lambda f: f.assign(is_signal_new=np.where(f.index == 2, 2, f.is_signal_new)), "row 2 has is_signal_new = 2"),
        (lambda f: f.assign(is_signal_new=f.is_signal_new.astype(float) * 0.5), "has is_signal_new = 0.5"),
        (_gap, "row 3 has a particle after padding (E_0 = 0, E_2 > 0"),
        (_edit("E_0", 7, -1.0), "row 7 has a constituent with negative energy"),
        (lambda f: f.assign(ttv=f.ttv.astype(float) + 0.5), "row 0 has ttv = 1.5"),
        (lambda f: f.assign(E_9=f.E_9.astype(str)), "column(s) E_9 (object) are not numeric"),
    ],
)
def test_bad_h5_tables_name_the_file_and_the_problem(tmp_path, edit, words):
    path = write_published_h5(tmp_path / "train.h5", frame=edit(published_frame(random_jets())))
    with pytest.raises(DataFormatError) as err:
        topland.read_h5(path, chunk_rows=4)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


@pytest.mark.parametrize(
    "write, words",
    [
        (lambda p: write_published_h5(p, key="df"), "has no key 'table' (found: df)"),
        (lambda p: write_published_h5(p, format="fixed"), "fixed format"),
        (lambda p: p.write_bytes(b"not an hdf5 file"), "is not a readable HDFStore table"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_h5_files_name_the_file(tmp_path, write, words):
    path = tmp_path / "train.h5"
    write(path)
    with pytest.raises(DataFormatError) as err:
        topland.read_h5(path)
    assert str(path) in str(err.value) and words in str(err.value) and "write_h5" in str(err.value)


# ----------------------------------------------------------------------------------------------------- parquet


def test_reads_the_particle_transformer_conversion(tmp_path):
    jets = random_jets()
    got = topland.read_parquet(write_conversion_parquet(tmp_path / "train_file.parquet", jets), chunk_rows=5)
    assert_same_jets(got, jets, ttv=False, truth=False)
    np.testing.assert_array_equal(got.truth_p4, 0.0)  # the conversion keeps no truth momentum
    np.testing.assert_array_equal(got.ttv, -1)  # nor the split flag


def test_parquet_chunks_limit_and_truncation(tmp_path):
    jets = random_jets()
    path = write_conversion_parquet(tmp_path / "val_file.parquet", jets)
    whole = topland.read_parquet(path)
    for a, b in zip(topland.read_parquet(path, chunk_rows=3), whole):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(topland.read_parquet(path, limit=5, chunk_rows=2).p4, whole.p4[:5])
    np.testing.assert_array_equal(topland.read_parquet(path, max_particles=4).p4, jets.p4[:, :4])


def test_parquet_writer_matches_the_conversion_field_by_field(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    ak = pytest.importorskip("awkward")
    jets = random_jets()
    ours = ak.from_parquet(topland.write_parquet(tmp_path / "ours.parquet", jets))
    theirs = ak.from_parquet(write_conversion_parquet(tmp_path / "theirs.parquet", jets))
    assert ours.fields == list(topland.PARQUET_FIELDS) == theirs.fields
    assert str(ours.type) == str(theirs.type)  # the same dtypes: int64 label/nparticles, float32 and var * float32
    # Ours sums the constituents in float64, vector in float32: the jet sums agree to float32 rounding of a
    # ~100-term sum, the mass (a difference of squares) to 2e-4 relative, angles to a few 1e-7 rad.
    tolerance = {"jet_pt": 2e-6, "jet_energy": 2e-6, "jet_eta": 2e-6, "jet_phi": 2e-6, "jet_mass": 2e-4}
    for field in topland.PARQUET_FIELDS:
        a, b = (ak.to_numpy(ak.flatten(x[field], axis=None)) for x in (ours, theirs))
        atol = 2e-6 if field in ("part_deta", "part_dphi") else 0.0
        np.testing.assert_allclose(a, b, rtol=tolerance.get(field, 0.0), atol=atol, err_msg=field)
    assert pq.ParquetFile(tmp_path / "ours.parquet").metadata.row_group(0).column(0).compression == "LZ4"
    assert_same_jets(topland.read_parquet(tmp_path / "ours.parquet"), jets, ttv=False, truth=False)


def _with(field, row, values):
    def edit(record):
        import awkward as ak

        column = ak.to_list(record[field])
        column[row] = values(column[row])
        record[field] = column if field.startswith("part_") else np.asarray(column)
        return record

    return edit


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda r: {k: v for k, v in r.items() if k != "part_pz"}, "lacks field(s) part_pz"),
        (_with("part_energy", 4, lambda e: [e[0], np.nan, *e[2:]]), "row 4 has a constituent with E <= 0 or NaN"),
        (_with("part_energy", 5, lambda e: [0.0, *e[1:]]), "row 5 has a constituent with E <= 0"),
        (_with("part_px", 6, lambda x: [np.inf, *x[1:]]), "row 6 has a NaN or infinite constituent"),
        (_with("part_py", 2, lambda y: [*y, 1.0]), "row 2 has part_py of another length than part_energy"),
        (_with("label", 3, lambda _: 2), "row 3 has label = 2"),
        (lambda r: {**r, "part_px": r["jet_pt"]}, "field 'part_px' has type float, expected a list"),
    ],
)
def test_bad_parquet_files_name_the_file_and_the_problem(tmp_path, edit, words):
    path = write_conversion_parquet(tmp_path / "test_file.parquet", record=edit(conversion_record(random_jets())))
    with pytest.raises(DataFormatError) as err:
        topland.read_parquet(path, chunk_rows=4)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_unreadable_parquet_names_the_file(tmp_path):
    path = tmp_path / "train_file.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataFormatError, match="is not a readable parquet file") as err:
        topland.read_parquet(path)
    assert str(path) in str(err.value)


@settings(max_examples=20)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=8), st.integers(1, 6))
def test_padding_jagged_lists_keeps_each_jets_leading_values(counts, slots):
    counts = np.asarray(counts)
    values = np.arange(1, counts.sum() + 1, dtype=np.float32)
    got = topland._pad(values, counts, slots)
    start = 0
    for row, count in enumerate(counts):  # a plain loop as the reference
        kept = values[start : start + min(count, slots)]
        np.testing.assert_array_equal(got[row], np.pad(kept, (0, slots - kept.size)))
        start += count


# ---------------------------------------------------------------------------------------------------- folders


@pytest.mark.parametrize("layout", ["h5", "parquet"])
def test_read_dataset_finds_either_layout(tmp_path, layout):
    data = schema.JetData(*(random_jets(seed, n=4 + seed) for seed in range(3)))
    written = topland.write_dataset(tmp_path, data, layout=layout)
    assert topland.find_layout(tmp_path) == layout
    assert topland.dataset_files(tmp_path) == written
    assert [p.name for p in written] == list((schema.H5_FILES if layout == "h5" else schema.PARQUET_FILES).values())
    got = topland.read_dataset(tmp_path, max_particles=60, limit=5)
    for split, want in zip(got[:3], data[:3]):
        want = schema.take(want, np.arange(min(5, want.num_jets)))
        assert_same_jets(split, schema.Jets(want.p4[:, :60], *want[1:]), ttv=layout == "h5", truth=layout == "h5")
    assert got.energy_test is None


@pytest.mark.parametrize(
    "files, words",
    [
        ((), "has neither train.h5/val.h5/test.h5 (TopLandscape"),
        (("notes.txt", "jets.h5"), "(found: jets.h5)"),
        (("train.h5", "val.h5"), "has train.h5, val.h5 but not test.h5"),
        (("train_file.parquet", "test_file.parquet"), "but not val_file.parquet"),
        (("train.h5", "val.h5", "test.h5", "train_file.parquet"), "mixes the two layouts"),
    ],
)
def test_folders_without_one_complete_layout_say_what_is_expected(tmp_path, files, words):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    for call in (topland.find_layout, topland.read_dataset, topland.dataset_files):
        with pytest.raises(DataFormatError) as err:
            call(tmp_path)
        assert str(tmp_path) in str(err.value) and words in str(err.value)
    if not files:
        assert "omit --data to generate jets" in str(err.value)
        with pytest.raises(DataFormatError, match="is not a directory"):
            topland.find_layout(tmp_path / "missing")


def test_the_energy_test_set_travels_with_the_splits(tmp_path):
    """An energy-enriched test file beside the splits is written, hashed and read back; without it, None."""
    data = schema.JetData(*(random_jets(seed, n=4) for seed in range(3)), random_jets(9, n=5))
    files = topland.write_dataset(tmp_path, data)
    assert files[-1].name == "energy_test.h5" and topland.dataset_files(tmp_path) == files
    got = topland.read_dataset(tmp_path, limit={"train": 2, "val": None, "test": 3})
    assert (got.train.num_jets, got.val.num_jets, got.test.num_jets) == (2, 4, 3)
    np.testing.assert_array_equal(got.energy_test.p4, data.energy_test.p4)
    files[-1].unlink()
    assert topland.read_dataset(tmp_path).energy_test is None
