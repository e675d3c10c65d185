"""TopLandscape files as :class:`~.schema.Jets`: the published HDF5 tables and the Particle Transformer parquet files.

Two layouts of the same jets (Kasieczka, Plehn et al., zenodo.org/record/2603256), three split files each:

``h5``  train.h5, val.h5, test.h5 — a pandas HDFStore *table* (PyTables, ``format="table"``) under key ``table``,
    one row per jet, the 806 columns of ``schema.COLUMNS``: E_i, PX_i, PY_i, PZ_i for i < 200 (GeV, pT-ordered,
    zero-padded: E = 0 means no particle), truthE, truthPX, truthPY, truthPZ (the matched top, zero for QCD), ttv
    (the dataset card's test/train/validation flag, redundant with the file split) and is_signal_new (1 top, 0 QCD).
    The published momenta are float32 (the dataset card's example values are exact float32 numbers), ttv and
    is_signal_new integers; any numeric dtype is read.
``parquet``  train_file.parquet, val_file.parquet, test_file.parquet — the conversion by the Particle Transformer
    repository (github.com/jet-universe/particle_transformer, utils/convert_top_datasets.py; the TopLandscape.tar of
    its get_datasets.py): one awkward record per jet, written by ``ak.to_parquet`` (LZ4, level 4), fields
    ``PARQUET_FIELDS``: label int64; jet_pt, jet_eta, jet_phi, jet_energy, jet_mass float32 (of the constituents'
    sum); jet_nparticles int64; part_px, part_py, part_pz, part_energy, part_deta, part_dphi var * float32 (the
    constituents with E > 0, in the h5 order). The conversion keeps no truth momentum and no ttv, and it slices
    ``df.iloc[0:-1]``, so its files hold one jet fewer than the h5 files.

Readers stream (h5 in row chunks, parquet in record batches), keep the first ``max_particles`` constituents and
check what they read; every problem is a one-line :class:`~jaxbench.errors.DataFormatError` naming the file. The
writers produce the same layouts, so generated jets and downloaded ones meet in one format.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from jaxbench import progress
from jaxbench.errors import ConfigError, DataFormatError

from .schema import (
    COLUMNS,
    H5_FILES,
    MAX_PARTICLES,
    PARQUET_FILES,
    PARTICLE_COLUMNS,
    SPLITS,
    TRUTH_COLUMNS,
    JetData,
    Jets,
)

#: The HDFStore key of the published tables.
H5_KEY = "table"
#: The fields the Particle Transformer conversion writes, in its order.
PARQUET_FIELDS = (
    "label",
    "jet_pt",
    "jet_eta",
    "jet_phi",
    "jet_energy",
    "jet_mass",
    "jet_nparticles",
    "part_px",
    "part_py",
    "part_pz",
    "part_energy",
    "part_deta",
    "part_dphi",
)
#: The parquet fields of a constituent's (E, px, py, pz), in the order of ``Jets.p4``.
PARQUET_MOMENTUM = ("part_energy", "part_px", "part_py", "part_pz")
#: Rows per parquet row group in the files written here (the conversion uses pyarrow's default, ~1 M).
PARQUET_ROW_GROUP = 65_536

_H5_FIX = (
    "TopLandscape's train.h5/val.h5/test.h5 come from zenodo.org/record/2603256; "
    "write your own with tasks.jets.topland.write_h5"
)
_PARQUET_FIX = (
    "The Particle Transformer conversion comes from TopLandscape.tar (github.com/jet-universe/particle_transformer, "
    "get_datasets.py); write your own with tasks.jets.topland.write_parquet"
)
_PARQUET_NEEDED = (*PARQUET_MOMENTUM, "label")


# --------------------------------------------------------------------------------------------------------------
# HDF5 (pandas HDFStore table)


def read_h5(
    path: str | Path, max_particles: int = MAX_PARTICLES, chunk_rows: int = 100_000, limit: int | None = None
) -> Jets:
    """The jets of a TopLandscape HDF5 table (the first ``limit`` rows, all if None), ``max_particles`` slots each.

    Streams ``chunk_rows`` rows at a time into float32 arrays. Checks: key ``table`` in table format, all 806
    columns, numeric dtypes, labels in {0, 1}, finite values, E >= 0 and trailing padding. Momentum left in an
    empty slot (E = 0) is zeroed, as the conversion's E > 0 mask drops it.
    """
    import pandas as pd

    path = Path(path)
    _check_sizes(max_particles, chunk_rows, limit, most=MAX_PARTICLES)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist. {_H5_FIX}.")
    try:
        with pd.HDFStore(path, mode="r") as store:
            storer = _h5_table(path, store)
            _check_h5_columns(path, store.select(H5_KEY, stop=0))
            total = storer.nrows if limit is None else min(storer.nrows, limit)
            jets = _allocate(total, max_particles)
            with progress.bar(f"jets: reading {path.name}", -(-total // chunk_rows)) as advance:
                for start in range(0, total, chunk_rows):
                    rows = slice(start, min(start + chunk_rows, total))
                    frame = store.select(H5_KEY, start=rows.start, stop=rows.stop)
                    _fill(jets, rows, *_h5_chunk(path, frame, max_particles, start))
                    advance()
    except DataFormatError:
        raise
    except (OSError, RuntimeError) as err:  # a corrupt or truncated file (tables.HDF5ExtError is a RuntimeError)
        reason = _reason(err)
        raise DataFormatError(f"{path} is not a readable HDFStore table ({reason}). {_H5_FIX}.") from None
    return jets


def write_h5(path: str | Path, jets: Jets, chunk_rows: int = 20_000) -> Path:
    """``jets`` as a TopLandscape HDF5 table (806 columns, float32 momenta, int64 ttv/is_signal_new), atomically.

    Constituents are padded with zeros or truncated to 200 slots; at least one jet (pandas writes no empty table).
    Returns ``path``.
    """
    import pandas as pd

    path = Path(path)
    _check_jets("write_h5", jets)
    n, slots = jets.p4.shape[0], min(jets.p4.shape[1], MAX_PARTICLES)
    if n == 0:
        raise DataFormatError(f"write_h5: no jets for {path}; pandas writes no table for an empty frame.")
    with _atomic(path) as tmp, pd.HDFStore(tmp, mode="w") as store:
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            floats = np.zeros((stop - start, len(COLUMNS) - 2), np.float32)  # one block: pandas need not copy
            floats[:, : 4 * MAX_PARTICLES].reshape(-1, MAX_PARTICLES, 4)[:, :slots] = jets.p4[start:stop, :slots]
            floats[:, 4 * MAX_PARTICLES :] = jets.truth_p4[start:stop]
            frame = pd.DataFrame(floats, columns=list(COLUMNS[:-2]), index=np.arange(start, stop), copy=False)
            frame["ttv"] = np.asarray(jets.ttv[start:stop], np.int64)
            frame["is_signal_new"] = np.asarray(jets.label[start:stop], np.int64)
            store.append(H5_KEY, frame, format="table", index=False)
    return path


def _h5_chunk(path: Path, frame, max_particles: int, first_row: int) -> tuple[np.ndarray, ...]:
    """(p4, label, truth_p4, ttv) of a DataFrame of table rows, checked."""
    p4 = frame[list(PARTICLE_COLUMNS[: 4 * max_particles])].to_numpy(np.float32).reshape(-1, max_particles, 4)
    p4 = np.require(p4, requirements="W")  # pandas may hand out a read-only view; empty slots are zeroed in place
    truth = frame[list(TRUTH_COLUMNS)].to_numpy(np.float32)
    label = _labels(path, frame["is_signal_new"].to_numpy(), first_row, "is_signal_new", _H5_FIX)
    ttv = _integers(path, frame["ttv"].to_numpy(), first_row, "ttv", _H5_FIX)
    _check_constituents(path, p4, first_row, _H5_FIX)
    _fail_rows(path, ~np.isfinite(truth).all(axis=1), first_row, "has a NaN or infinite truth momentum", _H5_FIX)
    return p4, label, truth, ttv


def _h5_table(path: Path, store):
    """The storer of the ``table`` key, which must be in table format."""
    if f"/{H5_KEY}" not in store.keys():
        found = ", ".join(key.lstrip("/") for key in store.keys()) or "no keys"
        raise DataFormatError(
            f"{path} has no key '{H5_KEY}' (found: {found}); TopLandscape files are a pandas HDFStore table under "
            f"key '{H5_KEY}'. {_H5_FIX}."
        )
    storer = store.get_storer(H5_KEY)
    if not storer.is_table:
        raise DataFormatError(
            f"{path} stores '{H5_KEY}' in pandas' fixed format, which cannot be read in chunks; rewrite it with "
            f"DataFrame.to_hdf(..., format='table') or tasks.jets.topland.write_h5."
        )
    return storer


def _check_h5_columns(path: Path, head) -> None:
    """All 806 columns present, each numeric."""
    import pandas as pd

    missing = [column for column in COLUMNS if column not in head.columns]
    if missing:
        shown = ", ".join(missing[:6]) + (f", ... ({len(missing)} in all)" if len(missing) > 6 else "")
        raise DataFormatError(
            f"{path} lacks column(s) {shown}; the TopLandscape h5 layout has the 806 columns E_0, PX_0, PY_0, PZ_0, "
            f"..., PZ_199, truthE, truthPX, truthPY, truthPZ, ttv, is_signal_new (schema.COLUMNS). {_H5_FIX}."
        )
    wrong = [f"{c} ({head[c].dtype})" for c in COLUMNS if not pd.api.types.is_numeric_dtype(head[c].dtype)]
    if wrong:
        raise DataFormatError(
            f"{path}: column(s) {', '.join(wrong[:6])} are not numeric; TopLandscape stores float32 momenta and "
            f"integer ttv/is_signal_new. {_H5_FIX}."
        )


# --------------------------------------------------------------------------------------------------------------
# Parquet (the Particle Transformer conversion)


def read_parquet(
    path: str | Path, max_particles: int = MAX_PARTICLES, limit: int | None = None, chunk_rows: int = 20_000
) -> Jets:
    """The jets of a Particle Transformer TopLandscape parquet file, padded to ``max_particles`` (E, px, py, pz) slots.

    Reads part_energy, part_px, part_py, part_pz and label in record batches of ``chunk_rows``
    (``ParquetFile.iter_batches``; pyarrow decodes a row group at a time, ~1 M rows in the published files). The
    conversion keeps no truth momentum and no split flag: ``truth_p4`` is zeros and ``ttv`` is -1. Checks: the
    fields, list columns of equal lengths per jet, no nulls, labels in {0, 1}, finite values, E > 0 per constituent.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    _check_sizes(max_particles, chunk_rows, limit)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist. {_PARQUET_FIX}.")
    try:
        file = pq.ParquetFile(path)
        _check_parquet_fields(path, file.schema_arrow, pa)
        total = file.metadata.num_rows if limit is None else min(file.metadata.num_rows, limit)
        jets = _allocate(total, max_particles)
        jets.ttv[:] = -1
        start = 0
        with progress.bar(f"jets: reading {path.name}", -(-total // chunk_rows)) as advance:
            for batch in file.iter_batches(batch_size=chunk_rows, columns=list(_PARQUET_NEEDED)):
                if start >= total:
                    break
                batch = batch.slice(0, min(batch.num_rows, total - start))
                p4, label = _parquet_batch(path, batch, max_particles, start)
                jets.p4[start : start + batch.num_rows], jets.label[start : start + batch.num_rows] = p4, label
                start += batch.num_rows
                advance()
    except DataFormatError:
        raise
    except (OSError, pa.ArrowException) as err:  # a corrupt or truncated file
        reason = _reason(err)
        raise DataFormatError(f"{path} is not a readable parquet file ({reason}). {_PARQUET_FIX}.") from None
    return jets


def write_parquet(path: str | Path, jets: Jets) -> Path:
    """``jets`` in the Particle Transformer layout (``PARQUET_FIELDS``, its dtypes, LZ4), atomically; returns ``path``.

    Constituents are the slots with E > 0; derived fields follow the conversion (vector's definitions, computed in
    float64 and stored as float32): jet four-momentum = sum of constituents, eta = asinh(pz / pT) (0 when pT = pz =
    0), mass = sign(m^2) sqrt(|m^2|), part_deta = (eta - jet_eta) * sign(jet_eta) (sign 0 -> +1), part_dphi wrapped
    to [-pi, pi). ``truth_p4`` and ``ttv`` have no field in this layout and are not written.
    """
    import awkward as ak

    path = Path(path)
    _check_jets("write_parquet", jets)
    p4 = np.asarray(jets.p4, np.float32)
    present = p4[..., 0] > 0
    counts = present.sum(axis=1).astype(np.int64)
    energy, px, py, pz = (p4[..., q][present] for q in range(4))
    row = np.repeat(np.arange(p4.shape[0]), counts)
    jet_e, jet_px, jet_py, jet_pz = (
        np.bincount(row, weights=np.asarray(x, np.float64), minlength=p4.shape[0]) for x in (energy, px, py, pz)
    )
    jet_pt, jet_eta, jet_phi = _pt_eta_phi(jet_px, jet_py, jet_pz)
    mass2 = jet_e**2 - jet_px**2 - jet_py**2 - jet_pz**2
    _, eta, phi = _pt_eta_phi(*(np.asarray(x, np.float64) for x in (px, py, pz)))
    eta_sign = np.where(jet_eta < 0, -1.0, 1.0)  # the conversion takes sign 0 as +1
    deta = (eta - jet_eta[row]) * eta_sign[row]
    dphi = (phi - jet_phi[row] + np.pi) % (2 * np.pi) - np.pi

    def jagged(values):
        return ak.unflatten(np.asarray(values, np.float32), counts)

    record = {
        "label": np.asarray(jets.label, np.int64),
        "jet_pt": jet_pt.astype(np.float32),
        "jet_eta": jet_eta.astype(np.float32),
        "jet_phi": jet_phi.astype(np.float32),
        "jet_energy": jet_e.astype(np.float32),
        "jet_mass": np.copysign(np.sqrt(np.abs(mass2)), mass2).astype(np.float32),
        "jet_nparticles": counts,
        "part_px": jagged(px),
        "part_py": jagged(py),
        "part_pz": jagged(pz),
        "part_energy": jagged(energy),
        "part_deta": jagged(deta),
        "part_dphi": jagged(dphi),
    }
    with _atomic(path) as tmp:
        ak.to_parquet(ak.Array(record), tmp, compression="LZ4", compression_level=4, row_group_size=PARQUET_ROW_GROUP)
    return path


def _parquet_batch(path: Path, batch, max_particles: int, first_row: int) -> tuple[np.ndarray, np.ndarray]:
    """(p4, label) of a record batch: the jagged constituents padded to ``max_particles`` slots, checked."""
    import pyarrow.compute as pc

    p4 = np.zeros((batch.num_rows, max_particles, 4), np.float32)
    counts = None
    for q, field in enumerate(PARQUET_MOMENTUM):  # part_energy first: the others must match its lengths
        column = batch.column(field)
        flat = pc.list_flatten(column)
        if column.null_count or flat.null_count:
            raise DataFormatError(f"{path}: field {field!r} has null entries. {_PARQUET_FIX}.")
        length = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        counts = length if counts is None else counts
        _fail_rows(path, length != counts, first_row, f"has {field} of another length than part_energy", _PARQUET_FIX)
        values = flat.to_numpy(zero_copy_only=False).astype(np.float32)
        if q == 0:
            bad = np.zeros(batch.num_rows, bool)
            bad[np.repeat(np.arange(batch.num_rows), counts)[~(values > 0)]] = True  # NaN fails too
            _fail_rows(
                path, bad, first_row, "has a constituent with E <= 0 or NaN (the conversion keeps E > 0)", _PARQUET_FIX
            )
        p4[..., q] = _pad(values, counts, max_particles)
    label = batch.column("label")
    if label.null_count:
        raise DataFormatError(f"{path}: field 'label' has null entries. {_PARQUET_FIX}.")
    label = _labels(path, label.to_numpy(zero_copy_only=False), first_row, "label", _PARQUET_FIX)
    _check_constituents(path, p4, first_row, _PARQUET_FIX)
    return p4, label


def _check_parquet_fields(path: Path, schema, pa) -> None:
    """The needed fields present: constituent fields as numeric lists, label numeric."""
    missing = [field for field in _PARQUET_NEEDED if field not in schema.names]
    if missing:
        raise DataFormatError(
            f"{path} lacks field(s) {', '.join(missing)} (found: {', '.join(schema.names) or 'none'}); the Particle "
            f"Transformer conversion writes {', '.join(PARQUET_FIELDS)}. {_PARQUET_FIX}."
        )
    for field in PARQUET_MOMENTUM:
        kind = schema.field(field).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not _numeric(pa, kind.value_type):
            raise DataFormatError(
                f"{path}: field {field!r} has type {kind}, expected a list of float32 per jet (var * float32). "
                f"{_PARQUET_FIX}."
            )
    label = schema.field("label").type
    if not (_numeric(pa, label) or pa.types.is_boolean(label)):
        raise DataFormatError(f"{path}: field 'label' has type {label}, expected int64 (1 top, 0 QCD). {_PARQUET_FIX}.")


def _numeric(pa, kind) -> bool:
    return pa.types.is_floating(kind) or pa.types.is_integer(kind)


def _pad(values: np.ndarray, counts: np.ndarray, slots: int) -> np.ndarray:
    """(N, slots) float32: the first ``slots`` of each jet's ``counts[i]`` consecutive ``values``, zero-padded."""
    out = np.zeros((counts.shape[0], slots), np.float32)
    row = np.repeat(np.arange(counts.shape[0]), counts)
    slot = np.arange(values.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = slot < slots
    out[row[keep], slot[keep]] = values[keep]
    return out


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, pseudorapidity and azimuth as vector defines them (eta 0 for a null vector, +-inf along the beam)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.nan_to_num(np.arcsinh(pz / pt), nan=0.0, posinf=np.inf, neginf=-np.inf)
    return pt, eta, np.arctan2(py, px)


# --------------------------------------------------------------------------------------------------------------
# Directories of three split files


def find_layout(directory: str | Path) -> str:
    """``"h5"`` or ``"parquet"``: which layout's three split files ``directory`` holds (exactly one layout)."""
    directory = Path(directory)
    expected = (
        f"neither {'/'.join(H5_FILES.values())} (TopLandscape, zenodo.org/record/2603256) nor "
        f"{'/'.join(PARQUET_FILES.values())} (Particle Transformer conversion)"
    )
    fix = "download them or omit --data to generate jets"
    if not directory.is_dir():
        raise DataFormatError(f"{directory} is not a directory, so it has {expected}; {fix}.")
    h5 = [name for name in H5_FILES.values() if (directory / name).is_file()]
    parquet = [name for name in PARQUET_FILES.values() if (directory / name).is_file()]
    if h5 and parquet:
        raise DataFormatError(
            f"{directory} mixes the two layouts ({', '.join(h5 + parquet)}); keep the three files of one layout there "
            "or point --data at a folder holding one."
        )
    for layout, names, found in (("h5", H5_FILES, h5), ("parquet", PARQUET_FILES, parquet)):
        if len(found) == len(SPLITS):
            return layout
        if found:
            missing = [name for name in names.values() if name not in found]
            raise DataFormatError(f"{directory} has {', '.join(found)} but not {', '.join(missing)}; {fix}.")
    data_files = sorted(p.name for p in directory.iterdir() if p.suffix in (".h5", ".hdf5", ".parquet"))
    shown = (
        ", ".join(data_files[:8]) + (", ..." if len(data_files) > 8 else "") if data_files else "no h5/parquet files"
    )
    raise DataFormatError(f"{directory} has {expected} (found: {shown}); {fix}.")


#: The energy-enriched test set jaxbench generates for the jet-energy study, beside the splits (same layout).
ENERGY_TEST_FILES = {"h5": "energy_test.h5", "parquet": "energy_test_file.parquet"}


def dataset_files(directory: str | Path) -> list[Path]:
    """The files ``read_dataset`` reads: the three split files (train, val, test) of ``directory``'s layout, then
    the energy-enriched test file if there."""
    directory = Path(directory)
    layout = find_layout(directory)
    names = H5_FILES if layout == "h5" else PARQUET_FILES
    extra = directory / ENERGY_TEST_FILES[layout]
    return [directory / names[split] for split in SPLITS] + ([extra] if extra.is_file() else [])


def read_dataset(
    directory: str | Path, max_particles: int = MAX_PARTICLES, limit: int | Mapping[str, int | None] | None = None
) -> JetData:
    """The train, val and test jets of ``directory`` (either layout), the first ``limit`` of each if given (one
    number, or one per split name; None: all), and the energy-enriched test set when its file is there."""
    read = read_h5 if find_layout(directory) == "h5" else read_parquet
    limits = limit if isinstance(limit, Mapping) else dict.fromkeys(SPLITS, limit)
    files = dataset_files(directory)
    splits = [read(file, max_particles=max_particles, limit=limits.get(s)) for s, file in zip(SPLITS, files)]
    energy = read(files[3], max_particles=max_particles, limit=limits.get("energy_test")) if len(files) > 3 else None
    return JetData(*splits, energy)


def write_dataset(directory: str | Path, data: JetData, layout: str = "h5") -> list[Path]:
    """The three splits of ``data`` as ``directory``'s split files in ``layout`` ("h5" or "parquet"), and its
    energy-enriched test set if any; returns the files."""
    if layout not in ("h5", "parquet"):
        raise ConfigError(f"write_dataset: layout {layout!r} is neither 'h5' nor 'parquet'.")
    directory = Path(directory)
    names, write = (H5_FILES, write_h5) if layout == "h5" else (PARQUET_FILES, write_parquet)
    files = [write(directory / names[split], getattr(data, split)) for split in SPLITS]
    if data.energy_test is not None:
        files.append(write(directory / ENERGY_TEST_FILES[layout], data.energy_test))
    return files


# --------------------------------------------------------------------------------------------------------------
# Shared checks and helpers


def _check_sizes(max_particles: int, chunk_rows: int, limit: int | None, most: int | None = None) -> None:
    if not 1 <= max_particles <= (most or max_particles):
        allowed = f"1..{most} (the layout's slots)" if most else "at least 1"
        raise ConfigError(f"max_particles must be {allowed}, got {max_particles}.")
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be positive, got {chunk_rows}.")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be None or >= 0, got {limit}.")


def _check_jets(where: str, jets: Jets) -> None:
    """Consistent shapes: p4 (N, P, 4), label (N,), truth_p4 (N, 4), ttv (N,)."""
    p4 = np.shape(jets.p4)
    n = p4[0] if len(p4) == 3 else -1
    shapes = {"p4": (n, p4[1] if len(p4) == 3 else -1, 4), "label": (n,), "truth_p4": (n, 4), "ttv": (n,)}
    for field, shape in shapes.items():
        if np.shape(getattr(jets, field)) != shape or n < 0:
            raise DataFormatError(
                f"{where}: jets.{field} has shape {np.shape(getattr(jets, field))}, expected {shape} "
                "(p4 (N, P, 4), label (N,), truth_p4 (N, 4), ttv (N,))."
            )


def _check_constituents(path: Path, p4: np.ndarray, first_row: int, fix: str) -> None:
    """Finite momenta, E >= 0, empty slots (E = 0) only after the last particle; zeroes momentum in empty slots.

    Written to allocate little beyond one (N, P) mask: fresh memory is slow to touch on some machines.
    """
    finite = np.isfinite(p4.sum(axis=(1, 2), dtype=np.float64))  # NaN and inf survive the sum
    _fail_rows(path, ~finite, first_row, "has a NaN or infinite constituent momentum", fix)
    energy = p4[..., 0]
    _fail_rows(path, energy.min(axis=1, initial=0.0) < 0, first_row, "has a constituent with negative energy", fix)
    present = energy > 0
    count = present.sum(axis=1)
    end = np.where(count > 0, present.shape[1] - np.argmax(present[:, ::-1], axis=1), 0)  # past the last particle
    rows = np.flatnonzero(count != end)
    if rows.size:
        slot = int(np.argmin(present[rows[0]]))  # the first empty slot, which a particle follows
        after = slot + int(np.argmax(present[rows[0], slot:]))
        raise DataFormatError(
            f"{path}: row {first_row + int(rows[0])} has a particle after padding (E_{slot} = 0, E_{after} > 0; "
            f"{rows.size} such rows in rows {first_row}..{first_row + p4.shape[0] - 1}); the layout pads with zeros "
            f"after the last constituent. {fix}."
        )
    np.multiply(p4, present[..., None], out=p4)


def _labels(path: Path, values: np.ndarray, first_row: int, field: str, fix: str) -> np.ndarray:
    """(N,) int32 labels, which must be 0 or 1."""
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: row {first_row + row} has {field} = {values[row].item()!r}, expected 1 (top) or 0 (QCD). {fix}."
        )
    return values.astype(np.int32)


def _integers(path: Path, values: np.ndarray, first_row: int, field: str, fix: str) -> np.ndarray:
    """(N,) int32 of a flag column, which must hold finite integers."""
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: row {first_row + row} has {field} = {values[row].item()!r}, expected an integer. {fix}."
        )
    return values.astype(np.int32)


def _reason(err: Exception) -> str:
    """One line for an error from a reader library (HDF5 errors end with the useful line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else 'no message'}"


def _fail_rows(path: Path, bad: np.ndarray, first_row: int, what: str, fix: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad)
        more = f" ({rows.size} such rows in this chunk)" if rows.size > 1 else ""
        raise DataFormatError(f"{path}: row {first_row + int(rows[0])} {what}{more}. {fix}.")


def _allocate(n: int, slots: int) -> Jets:
    return Jets(
        np.zeros((n, slots, 4), np.float32),
        np.zeros((n,), np.int32),
        np.zeros((n, 4), np.float32),
        np.zeros((n,), np.int32),
    )


def _fill(jets: Jets, rows: slice, p4, label, truth, ttv) -> None:
    jets.p4[rows], jets.label[rows], jets.truth_p4[rows], jets.ttv[rows] = p4, label, truth, ttv


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds (removed otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
