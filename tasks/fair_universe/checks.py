"""What ``fair_universe-v0`` needs of its data, checked before anything trains (one-line errors).

``validate`` runs before the run directory exists, on the config and the parquet footer alone
(columns and types first, then the size);
``check_data`` on the events themselves (the loader calls it too, so a file that is too small
fails before any stage is written). The classifier trains on the training events that pass the
analysis cuts, one in ten held out, in batches of ``classifier.batch_size`` (a batch larger than
the training set is refused rather than shrunk, so the config in the manifest is the one that ran);
the templates' score bins hold equal expected signal of the PE pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from jaxbench.errors import ConfigError, DataFormatError

from . import io, schema
from .classifier import VALID_FRACTION
from .config import FairUniverseConfig
from .systematics import apply_nominal

TRAIN_ROWS_KEY = "jaxbench_train_rows"  # metadata of files jaxbench writes: where the PE pool starts
GENERATED_FIX = "raise data.train_events / data.pool_events"


def training_split(n_passing: int) -> tuple[int, int]:
    """(training, held-out) events of ``train_classifier`` from the events that pass the cuts."""
    held_out = int(n_passing * VALID_FRACTION)
    return n_passing - held_out, held_out


def _smaller_batch(n_train: int) -> str:
    """A ``--set`` that fits: the largest power of two <= n_train / 2 (cuts may remove more)."""
    size = 1 << max(0, int(max(n_train // 2, 1)).bit_length() - 1)
    return f"--set classifier.batch_size={size}"


def _batch_error(config: FairUniverseConfig, n_train: int, what: str, fix: str) -> ConfigError:
    batch = config.classifier.batch_size
    hint = f"pass {_smaller_batch(n_train)}, or {fix}" if n_train >= 1 else fix
    return ConfigError(f"classifier.batch_size={batch} is larger than {what}; {hint}.")


def validate(config: FairUniverseConfig, path: Path | None) -> None:
    """Config and file footer against each other, before the run directory is created."""
    if path is None:
        counts = config.data.train_events
        n_train, _ = training_split(sum(counts))
        if n_train < config.classifier.batch_size:
            what = f"the at most {n_train} training events of data.train_events={counts} (before the cuts)"
            raise _batch_error(config, n_train, what, "raise data.train_events")
        if config.data.pool_events[schema.SIGNAL] < config.analysis.n_bins:
            raise ConfigError(
                f"analysis.n_bins={config.analysis.n_bins} needs as many signal events in the PE pool; "
                f"data.pool_events has {config.data.pool_events[schema.SIGNAL]}; lower analysis.n_bins or raise it."
            )
        return
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(
            f"--data {path} is a directory; pass the parquet file itself "
            f"(e.g. {path / 'FAIR_Universe_HiggsML_data.parquet'})."
        )
    if not path.is_file():  # the loader names what is missing and where to get it
        return
    io.check_schema(path)  # a file in another format is reported as such, whatever its size
    rows = int(pq.read_metadata(path).num_rows)
    if rows == 0:
        raise DataFormatError(
            f"{path.name} has 0 rows; the task trains a classifier and builds templates from its events "
            "(signal and background); pass a file with events, e.g. the release's (220,099,101 rows)."
        )
    train_rows = _train_rows(path, rows)
    n_train, _ = training_split(train_rows)
    if n_train < config.classifier.batch_size:
        what = (
            f"the at most {n_train} training events of {path.name} ({rows} rows, {train_rows} of them for "
            f"training, {VALID_FRACTION:.0%} held out, before the cuts)"
        )
        raise _batch_error(config, n_train, what, "pass a larger file")


def _both_classes(source: str, what: str, signal: int, background: int, needs: str, fix: str) -> None:
    if signal == 0 or background == 0:
        raise DataFormatError(
            f"{source}: {what} {signal} signal (htautau) and {background} background events that pass "
            f"the analysis cuts with weight > 0; {needs} both; {fix}."
        )


def check_data(
    data: schema.Data, config: FairUniverseConfig, source: str = "the generated data", fix: str = GENERATED_FIX
) -> None:
    """The events against the config: both classes present, enough for one batch and for the bins."""
    train_passed, train_signal, train_background = _passing(data.train)
    _both_classes(source, "the training events hold", train_signal, train_background, "the classifier needs", fix)
    n_train, n_valid = training_split(train_passed)
    if n_valid < 1:
        raise DataFormatError(
            f"{source}: only {train_passed} training events pass the analysis cuts; the classifier needs at "
            f"least {int(np.ceil(1 / VALID_FRACTION))} ({VALID_FRACTION:.0%} are held out for validation); {fix}."
        )
    if n_train < config.classifier.batch_size:
        what = f"the {n_train} training events of {source} ({train_passed} pass the cuts, {n_valid} held out)"
        raise _batch_error(config, n_train, what, fix)
    _, pool_signal, pool_background = _passing(data.pool)
    _both_classes(source, "the pseudo-experiment pool holds", pool_signal, pool_background, "the templates need", fix)
    n_bins = config.analysis.n_bins
    if pool_signal < n_bins:
        raise ConfigError(
            f"analysis.n_bins={n_bins} needs as many signal events in the pseudo-experiment pool (the bins hold "
            f"equal expected signal); {source} has {pool_signal}; pass --set analysis.n_bins={pool_signal} or {fix}."
        )


def _passing(pool: schema.EventPool) -> tuple[int, int, int]:
    """Events that pass the nominal cuts: all of them, signal and background with weight > 0."""
    if pool.num_events == 0:
        return 0, 0, 0
    _, weights, passed = (np.asarray(a) for a in apply_nominal(pool.pri, pool.weights, pool.process))
    signal = np.asarray(pool.process) == schema.SIGNAL
    weighted = passed & (weights > 0)
    return int(passed.sum()), int((weighted & signal).sum()), int((weighted & ~signal).sum())


def _train_rows(path: Path, rows: int) -> int:
    """Rows ``load`` trains on: the metadata's ``jaxbench_train_rows`` when jaxbench wrote it, else half."""
    try:
        split = json.loads(io.metadata_path_for(path).read_text()).get(TRAIN_ROWS_KEY)
    except (OSError, ValueError, AttributeError):
        split = None
    return int(split) if isinstance(split, int) and 0 <= split <= rows else rows // 2
