"""Read and write FAIR Universe HiggsML Uncertainty Challenge data in the public release's format.

The public release (Zenodo record 15131565, ``FAIR_Universe_HiggsML_data.zip``) holds
``FAIR_Universe_HiggsML_data.parquet`` (220,099,101 events, 31 columns) and, beside it,
``FAIR_Universe_HiggsML_data_metadata.json``. The columns are the 16 ``PRI_*`` and 12 ``DER_*``
features of ``schema`` (GeV, radians; a missing jet holds -25 and PRI_jet_all_pt is 0 then),
``weights`` (expected events at the release's luminosity), ``labels`` (1 = signal, 0 = background)
and ``detailed_labels`` (htautau, ztautau, ttbar, diboson). The official loader reads
``total_rows`` and ``sum_weights`` from the metadata json; the release's croissant card gives
``luminosity`` 10 (fb^-1) and ``sumWeights`` 1051433.

``load_parquet`` checks all of this and fails with a ``DataFormatError`` that names the file, the
column or key at fault and the fix; ``write_parquet`` writes the same layout, e.g. to export
simulated events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jaxbench.errors import DataFormatError
from jaxbench.records import sha256_file

from . import schema

COLUMNS: tuple[str, ...] = schema.PRI_COLUMNS + schema.DER_COLUMNS + ("weights", "labels", "detailed_labels")
# What pyarrow raises on a damaged file: Arrow errors, OSError (thrift), UnicodeDecodeError (names).
UNREADABLE = (pa.ArrowException, OSError, ValueError)
RELEASE = "FAIR Universe files from the public release (zenodo.org/records/15131565) have 31 columns"
# Canonical metadata key -> accepted spellings (the official loader's, the croissant card's, ours).
METADATA_KEYS: dict[str, tuple[str, ...]] = {
    "sum_weights": ("sum_weights", "sumWeights", "sum_of_weights"),
    "luminosity": ("luminosity", "luminosity_fb", "lumi"),
    "total_rows": ("total_rows", "totalRows", "n_events"),
}


class LoadedData(NamedTuple):
    """Events of one file as host numpy arrays.

    pool: EventPool (pri (n, 16) float32, weights (n,) float32 expected events, process (n,)
    int32). der: (n, 12) float32 in DER_COLUMNS order. metadata: the json, with the canonical keys
    ``sum_weights``, ``luminosity`` (fb^-1) and ``total_rows`` filled in. sha256: hex digest of the
    parquet file.
    """

    pool: schema.EventPool
    der: np.ndarray
    metadata: dict
    sha256: str


def metadata_path_for(path: str | Path) -> Path:
    """The metadata json beside a parquet file: ``<stem>_metadata.json``, as in the release."""
    path = Path(path)
    return path.with_name(f"{path.stem}_metadata.json")


def load_parquet(path: str | Path, metadata_path: str | Path | None = None, *, rtol: float = 1e-6) -> LoadedData:
    """Load and validate a FAIR Universe parquet file and its metadata json.

    ``metadata_path`` defaults to ``metadata_path_for(path)``. The metadata's ``sum_weights`` must
    match the file's summed weights to relative ``rtol``; ``luminosity`` defaults to 10 fb^-1
    (the release's) when absent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            f"{path} does not exist. Download FAIR_Universe_HiggsML_data.zip from "
            "zenodo.org/records/15131565 and pass the extracted .parquet file, or write one with "
            "jaxbench.tasks.fair_universe.io.write_parquet."
        )
    check_schema(path)
    try:
        table = pq.read_table(path, columns=list(COLUMNS))
    except UNREADABLE as err:  # a readable footer over damaged pages
        raise DataFormatError(
            f"{path.name} is not a readable parquet file ({_one_line(err)}). {RELEASE}; re-download it."
        ) from err
    _check_no_nulls(path, table)

    pri = _features(path, table, schema.PRI_COLUMNS)
    der = _features(path, table, schema.DER_COLUMNS)
    n_jets = pri[:, schema.PRI["PRI_n_jets"]]
    bad_jets = int(np.count_nonzero((n_jets != np.round(n_jets)) | (n_jets < 0)))
    if bad_jets:
        raise DataFormatError(
            f"{path.name}: column 'PRI_n_jets' has {bad_jets} values that are not non-negative "
            "integers. It counts jets (0, 1, 2, ...); the file is not in the release's format."
        )
    weights = _features(path, table, ("weights",))[:, 0]
    negative = int(np.count_nonzero(weights < 0))
    if negative:
        raise DataFormatError(
            f"{path.name}: column 'weights' has {negative} negative values. Weights are expected "
            "event counts and are never negative in the release; re-export the file."
        )
    process = _processes(path, table)
    _check_labels(path, table, process)

    metadata = _load_metadata(
        path, metadata_path_for(path) if metadata_path is None else Path(metadata_path), weights, rtol
    )
    pool = schema.EventPool(pri=pri, weights=weights, process=process)
    return LoadedData(pool=pool, der=der, metadata=metadata, sha256=sha256_file(path))


def write_parquet(path: str | Path, pool: schema.EventPool, der: np.ndarray, metadata: dict | None = None) -> None:
    """Write events in the release's 31-column layout and ``<stem>_metadata.json`` beside them.

    ``metadata`` adds keys to the json (``luminosity`` defaults to 10 fb^-1); ``total_rows`` and
    ``sum_weights`` are always computed from the events. Shapes: as ``LoadedData``.
    """
    path = Path(path)
    pri, weights = np.asarray(pool.pri, np.float32), np.asarray(pool.weights, np.float32)
    process, der = np.asarray(pool.process), np.asarray(der, np.float32)
    n = pri.shape[0]
    for name, array, shape in (
        ("pool.pri", pri, (n, len(schema.PRI_COLUMNS))),
        ("der", der, (n, len(schema.DER_COLUMNS))),
        ("pool.weights", weights, (n,)),
        ("pool.process", process, (n,)),
    ):
        if array.shape != shape:
            raise DataFormatError(
                f"write_parquet: {name} has shape {array.shape}, expected {shape} "
                "(columns in schema.PRI_COLUMNS / schema.DER_COLUMNS order)."
            )
    if not np.issubdtype(process.dtype, np.integer) or not np.isin(process, np.arange(len(schema.PROCESSES))).all():
        raise DataFormatError(
            f"write_parquet: pool.process must hold integer ids into {schema.PROCESSES} "
            f"(0..{len(schema.PROCESSES) - 1}); got dtype {process.dtype}, "
            f"values {np.unique(process)[:8].tolist()}."
        )

    columns = {name: pri[:, j] for j, name in enumerate(schema.PRI_COLUMNS)}
    columns |= {name: der[:, j] for j, name in enumerate(schema.DER_COLUMNS)}
    columns["weights"] = weights
    columns["labels"] = (process == schema.SIGNAL).astype(np.int32)
    columns["detailed_labels"] = pa.DictionaryArray.from_arrays(
        pa.array(process, pa.int32()), pa.array(schema.PROCESSES)
    ).cast(pa.string())
    pq.write_table(pa.table(columns), path)

    content = {"luminosity": schema.LUMINOSITY_FB, **(metadata or {})}
    content |= {"total_rows": n, "sum_weights": float(np.sum(weights, dtype=np.float64))}
    metadata_path_for(path).write_text(json.dumps(content, indent=2))


def check_schema(path: Path) -> None:
    """All 31 columns present with numeric / string types, read from the footer only (DataFormatError)."""
    try:
        arrow_schema = pq.read_schema(path)
    except UNREADABLE as err:
        raise DataFormatError(
            f"{path.name} is not a readable parquet file ({_one_line(err)}). {RELEASE}; re-download it."
        ) from err
    found = arrow_schema.names
    missing = [name for name in COLUMNS if name not in found]
    if missing:
        raise DataFormatError(
            f"{path.name} has no column {', '.join(repr(m) for m in missing)} "
            f"(found: {', '.join(found)}). {RELEASE}: the 16 PRI_* and 12 DER_* features, "
            "weights, labels and detailed_labels; re-download the release or re-export the events "
            "with write_parquet."
        )
    for name in COLUMNS:
        kind = arrow_schema.field(name).type
        if name == "detailed_labels":
            value = kind.value_type if pa.types.is_dictionary(kind) else kind
            ok = pa.types.is_string(value) or pa.types.is_large_string(value)
            expected = "strings"
        else:
            ok = pa.types.is_floating(kind) or pa.types.is_integer(kind)
            ok |= name == "labels" and pa.types.is_boolean(kind)
            expected = "numbers"
        if not ok:
            raise DataFormatError(
                f"{path.name}: column {name!r} has dtype {kind}, expected {expected}. "
                f"{RELEASE} with numeric features, weights and labels and string "
                "detailed_labels."
            )


def _one_line(error: Exception) -> str:
    """An Arrow error's message on one line (they may span several)."""
    return " ".join(str(error).split())


def _check_no_nulls(path: Path, table: pa.Table) -> None:
    for name in COLUMNS:
        nulls = table.column(name).null_count
        if nulls:
            raise DataFormatError(
                f"{path.name}: column {name!r} has {nulls} null values. The release has no "
                "missing entries (a missing jet holds -25); fill or drop those rows."
            )


def _features(path: Path, table: pa.Table, names: tuple[str, ...]) -> np.ndarray:
    """Columns as one (n, len(names)) float32 array; every value finite."""
    out = np.empty((table.num_rows, len(names)), np.float32)
    for j, name in enumerate(names):
        out[:, j] = table.column(name).to_numpy()
        bad = int(np.count_nonzero(~np.isfinite(out[:, j])))
        if bad:
            raise DataFormatError(
                f"{path.name}: column {name!r} has {bad} NaN or infinite values (as float32). "
                "The release has none (a missing jet holds -25); fix or drop those rows."
            )
    return out


def _processes(path: Path, table: pa.Table) -> np.ndarray:
    """detailed_labels as int32 ids into schema.PROCESSES."""
    labels = table.column("detailed_labels")
    if pa.types.is_dictionary(labels.type):
        labels = labels.cast(labels.type.value_type)
    ids = pc.index_in(labels, value_set=pa.array(schema.PROCESSES, labels.type))
    if ids.null_count:
        unknown = pc.unique(pc.filter(labels, pc.is_null(ids))).cast(pa.large_binary()).to_pylist()
        unknown = [u if u is None else u.decode("utf-8", "replace") for u in unknown]  # damaged files: not utf-8
        raise DataFormatError(
            f"{path.name}: column 'detailed_labels' has {ids.null_count} rows with unknown "
            f"values {unknown[:8]}; allowed: {list(schema.PROCESSES)}. Drop those rows or map "
            "them onto the release's processes."
        )
    return ids.to_numpy().astype(np.int32)


def _check_labels(path: Path, table: pa.Table, process: np.ndarray) -> None:
    labels = table.column("labels").to_numpy()
    expected = process == schema.SIGNAL
    wrong = np.flatnonzero(labels != expected)
    if wrong.size:
        row = int(wrong[0])
        raise DataFormatError(
            f"{path.name}: column 'labels' disagrees with 'detailed_labels' in {wrong.size} rows "
            f"(first: row {row}, labels={labels[row].item()!r}, "
            f"detailed_labels={schema.PROCESSES[process[row]]!r}). labels is 1 for htautau and "
            "0 for ztautau, ttbar and diboson."
        )


def _load_metadata(path: Path, metadata_path: Path, weights: np.ndarray, rtol: float) -> dict:
    """The metadata json with canonical keys, checked against the file's weights and rows."""
    file_sum = float(np.sum(weights, dtype=np.float64))
    how_to_fix = (
        f'write {{"sum_weights": {file_sum!r}, "luminosity": {schema.LUMINOSITY_FB}, '
        f'"total_rows": {weights.size}}} to {metadata_path.name}'
    )
    if not metadata_path.is_file():
        raise DataFormatError(
            f"{metadata_path} does not exist. The release ships "
            f"FAIR_Universe_HiggsML_data_metadata.json beside the parquet file; pass "
            f"metadata_path=... or {how_to_fix}."
        )
    try:
        raw = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{metadata_path.name} is not valid json ({err}).") from err
    if not isinstance(raw, dict):
        raise DataFormatError(f"{metadata_path.name} must hold a json object, not {type(raw)}.")
    # The croissant card nests the same facts under croissant.dataProperties.
    flat = {**raw.get("croissant", {}).get("dataProperties", {}), **raw}
    found = {key: next((flat[a] for a in aliases if a in flat), None) for key, aliases in METADATA_KEYS.items()}
    if found["sum_weights"] is None:
        raise DataFormatError(
            f"{metadata_path.name} has no key 'sum_weights' (found: {', '.join(raw)}; also "
            f"accepted: {', '.join(METADATA_KEYS['sum_weights'][1:])}). {how_to_fix}."
        )
    meta_sum = float(found["sum_weights"])
    if not abs(file_sum - meta_sum) <= rtol * abs(meta_sum):
        raise DataFormatError(
            f"{metadata_path.name}: sum_weights = {meta_sum!r} but the weights of {path.name} "
            f"sum to {file_sum!r} (relative difference {abs(file_sum / meta_sum - 1):.2e} > "
            f"{rtol:g}). The file and its metadata do not belong together, or the file is a "
            "subset of the release (the official loader rescales a subset's weights to "
            f"sum_weights); use the matching metadata or {how_to_fix}."
        )
    if found["total_rows"] is not None and int(found["total_rows"]) != weights.size:
        raise DataFormatError(
            f"{metadata_path.name}: total_rows = {found['total_rows']} but {path.name} has "
            f"{weights.size} rows; use the matching metadata or {how_to_fix}."
        )
    luminosity = schema.LUMINOSITY_FB if found["luminosity"] is None else found["luminosity"]
    return {**raw, "sum_weights": meta_sum, "luminosity": float(luminosity), "total_rows": int(weights.size)}
