"""Evaluate a challenge-style submission on jaxbench pseudo-experiments.

A FAIR Universe submission is a class ``Model(get_train_set, systematics)`` with ``fit()`` and
``predict(test_set) -> {"mu_hat", "delta_mu_hat", "p16", "p84"}``. ``get_train_set()`` returns
``{"data": DataFrame, "labels", "weights", "detailed_labels"}`` (28 feature columns); a test set is
``{"data": DataFrame, "weights"}`` with one row per observed event (weights 1), as the challenge's
ingestion gives it. ``systematics(data_set, tes=1.0, jes=1.0, soft_met=0.0, ttbar_scale=None,
diboson_scale=None, bkg_scale=None, dopostprocess=True, seed=0)`` applies jaxbench's systematics.

The PEs are the ones jaxbench's own estimator sees (same keys), materialised into rows here
because submissions expect rows; this is the slow path by design.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxbench.errors import JaxbenchError

from . import schema
from .pseudo_experiments import draw_pseudo_experiment, max_event_rate, pe_key
from .systematics import systematics_numpy
from .templates import event_features

REQUIRED_OUTPUTS = ("mu_hat", "delta_mu_hat", "p16", "p84")


class SubmissionError(JaxbenchError):
    """A submission that does not follow the challenge's interface."""


def _frame(columns: dict[str, np.ndarray]):
    import pandas as pd

    return pd.DataFrame(columns)


def _feature_columns(features: np.ndarray) -> dict[str, np.ndarray]:
    return {name: features[:, i] for i, name in enumerate(schema.FEATURE_COLUMNS)}


def _data_set(out: dict[str, np.ndarray]) -> dict[str, Any]:
    """A challenge data-set dict from ``systematics_numpy`` columns."""
    return {
        "data": _frame({name: out[name] for name in schema.FEATURE_COLUMNS}),
        "labels": (out["process"] == schema.SIGNAL).astype(np.int32),
        "weights": out["weights"],
        "detailed_labels": np.asarray(schema.PROCESSES)[out["process"]],
    }


def make_train_set_fn(train: schema.EventPool) -> Callable[[], dict[str, Any]]:
    """``get_train_set()`` of the challenge: nominal systematics applied, failing events dropped."""

    def get_train_set() -> dict[str, Any]:
        columns = {name: np.asarray(train.pri)[:, i] for i, name in enumerate(schema.PRI_COLUMNS)}
        return _data_set(systematics_numpy(columns, np.asarray(train.weights), np.asarray(train.process)))

    return get_train_set


def systematics(
    data_set: dict[str, Any],
    tes: float = 1.0,
    jes: float = 1.0,
    soft_met: float = 0.0,
    ttbar_scale: float | None = None,
    diboson_scale: float | None = None,
    bkg_scale: float | None = None,
    dopostprocess: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """The challenge's ``systematics`` on a data set dict with a DataFrame of PRI (+ DER) columns.

    Needs ``data_set["detailed_labels"]`` to know each event's process; returns the same layout.
    """
    data = data_set["data"]
    if "detailed_labels" not in data_set:
        raise SubmissionError(
            "systematics(): data_set has no 'detailed_labels'; the scale nuisances need each event's process."
        )
    names = list(schema.PROCESSES)
    process = np.array([names.index(str(label)) for label in data_set["detailed_labels"]], np.int32)
    columns = {name: np.asarray(data[name]) for name in schema.PRI_COLUMNS if name in data}
    out = systematics_numpy(
        columns,
        np.asarray(data_set["weights"]),
        process,
        tes=tes,
        jes=jes,
        soft_met=soft_met,
        ttbar_scale=1.0 if ttbar_scale is None else ttbar_scale,
        diboson_scale=1.0 if diboson_scale is None else diboson_scale,
        bkg_scale=1.0 if bkg_scale is None else bkg_scale,
        seed=seed,
        dopostprocess=dopostprocess,
    )
    return _data_set(out)


def _check_prediction(prediction: Any, index: int) -> dict[str, float]:
    if not isinstance(prediction, dict):
        raise SubmissionError(
            f"predict() of PE {index} returned {type(prediction).__name__}; it must return a dict "
            f"with keys {', '.join(REQUIRED_OUTPUTS)}."
        )
    missing = [k for k in REQUIRED_OUTPUTS if k not in prediction]
    if missing:
        got = ", ".join(map(str, prediction))
        raise SubmissionError(f"predict() of PE {index} has no {', '.join(missing)} (got {got}).")
    values = {k: float(np.asarray(prediction[k])) for k in REQUIRED_OUTPUTS}
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
        raise SubmissionError(f"predict() of PE {index} returned non-finite {', '.join(bad)}: {values}.")
    if values["p16"] > values["p84"]:
        raise SubmissionError(f"predict() of PE {index} returned p16 > p84 ({values['p16']} > {values['p84']}).")
    return values


def evaluate_submission(
    model_class: type,
    train: schema.EventPool,
    pool: schema.EventPool,
    met_noise: jax.Array,
    conditions: dict[str, np.ndarray],
    root_key: jax.Array,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Fits the submission once, then predicts every PE of ``conditions`` (index, mu_true, nu_true).

    ``met_noise`` and ``root_key`` are those of the run (``pool_met_noise``, the PE root key), so the
    submission sees the same PEs as jaxbench's own estimator.

    Returns per-PE arrays mu_hat, delta_mu_hat, p16, p84 (to score with ``coverage_score``).
    """
    model = model_class(get_train_set=make_train_set_fn(train), systematics=systematics)
    model.fit()
    max_rate = max_event_rate(pool, float(np.max(conditions["mu_true"])))
    draw = jax.jit(lambda key, mu, nu: draw_pseudo_experiment(key, pool, met_noise, mu, nu, max_rate))
    results = {k: [] for k in REQUIRED_OUTPUTS}
    for i, (index, mu, nu) in enumerate(zip(conditions["index"], conditions["mu_true"], conditions["nu_true"])):
        pe = draw(pe_key(root_key, int(index)), mu, nu)
        counts = np.asarray(pe.counts).astype(np.int64)
        rows = np.repeat(np.arange(counts.shape[0]), counts)
        features = np.asarray(event_features(pe.pri))[rows]
        test_set = {"data": _frame(_feature_columns(features)), "weights": np.ones(rows.shape[0], np.float32)}
        for k, v in _check_prediction(model.predict(test_set), int(index)).items():
            results[k].append(v)
        if progress is not None:
            progress(i)
    return {k: np.asarray(v, np.float32) for k, v in results.items()}
