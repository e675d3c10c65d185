"""``nowcast-v0``: precipitation nowcasting. A NowcastNet-style model (evolution network + semi-Lagrangian evolution
operator + generative decoder) predicts the next ``n_targets`` radar rain-rate frames from ``n_inputs`` observed ones;
pysteps' persistence, extrapolation, S-PROG and STEPS forecast the same events; every forecaster is scored per event
and lead time by CSI (plain and neighbourhood), raw and active-area MAE, centre-of-mass displacement, differential
trend and FSS, and its motion field is compared with the generator's true one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels import verification
from jaxbench.task import Stage, Task

from . import baselines, checks, generator, model, nowcastnet, report, studies, training
from .config import CRITERIA, STUDIES, NowcastConfig, datacard
from .forecaster import MODEL, Forecaster, true_motion
from .schema import Events, NowcastData

#: Distributions the task imports (their versions go into the manifest).
PACKAGES = ("flax", "optax", "pysteps", "opencv-python-headless", "pillow", "matplotlib")
#: Lead times (minutes) whose pooled CSI is named in the metrics (``csi_16_30min``), when the data have them.
NAMED_LEADS_MIN = (30.0, 60.0, 120.0, 180.0)


class Items(NamedTuple):
    """The test events and the pysteps baselines' forecasts of them (computed once, in ``conditions``).

    events: the test :class:`~.schema.Events`.
    baselines: ``{name: (E, n_targets, H, W)}`` mm/h; baseline_motion: ``{name: (E, 2, H, W)}`` px/step;
    baseline_fallback: ``{name: (E,)}`` bool, the events where S-PROG / STEPS could not run (too little rain, or
    pysteps raised) and the extrapolation stands in.
    """

    events: Events
    baselines: dict[str, np.ndarray]
    baseline_motion: dict[str, np.ndarray]
    baseline_fallback: dict[str, np.ndarray]


def generate(key: jax.Array, config: NowcastConfig) -> NowcastData:
    """Training and test events from the continuity-equation simulator (one key each), cached under
    $JAXBENCH_CACHE/nowcast."""
    train_key, test_key = jax.random.split(key)
    cache = generator.default_cache_dir()
    make = lambda k, n: generator.cached_events(cache, k, n, config.data, config.simulator)  # noqa: E731
    return NowcastData(make(train_key, config.data.n_train), make(test_key, config.data.n_test))


def load(path: Path, key: jax.Array, config: NowcastConfig) -> NowcastData:
    """NowcastNet case folders under ``path`` (``train/`` + ``test/``, or the last ``n_test`` cases as the test set)."""
    return nowcastnet.read_dataset(Path(path), config.data)


def save(path: Path, data: NowcastData, config: NowcastConfig) -> Path:
    """The events as NowcastNet case folders (16-bit PNGs) under ``path``/train and ``path``/test; returns ``path``."""
    nowcastnet.write_dataset(Path(path), data)
    return Path(path)


class Params(NamedTuple):
    """The trained model (weights, per-step losses)."""

    weights: Any
    history: training.History


def fit(key: jax.Array, data: NowcastData, config: NowcastConfig, stage: Stage) -> Params:
    """The evolution network, then the generative decoder, on the training events (checkpointed; a resumed run only
    loads)."""

    def train():
        weights, history = training.train(
            key,
            np.asarray(data.train.frames),
            config.model,
            config.data,
            config.training,
            checkpoint_dir=stage.directory("model.checkpoints"),
        )
        return {"weights": weights, "history": history}

    trained = stage("model", train)
    return Params(trained["weights"], training.History(*trained["history"]))


def conditions(key: jax.Array, data: NowcastData, config: NowcastConfig) -> Items:
    """The test events and every configured pysteps baseline's forecast of them."""
    d = config.data
    inputs = np.asarray(data.test.frames[:, : d.n_inputs])
    forecasts = baselines.run_baselines(key, inputs, d.n_targets, config.baselines, d)
    return Items(
        data.test,
        {name: np.asarray(f.frames, np.float32) for name, f in forecasts.items()},
        {name: np.asarray(f.motion, np.float32) for name, f in forecasts.items()},
        {name: np.broadcast_to(np.asarray(f.fallback, bool), (len(inputs),)).copy() for name, f in forecasts.items()},
    )


def evaluate(shared: Forecaster, items: Items, keys: jax.Array) -> dict[str, jax.Array]:
    """Per event: the model's frames (n_targets, H, W) mm/h with the generative noise from the event's key, the
    evolution operator's frames and its motion fields (n_targets, 2, H, W) px/step."""
    inputs = items.events.frames[:, : shared.data.n_inputs]

    def one(x, key):
        p = model.predict(shared.weights, shared.model, shared.data, x[None], key)
        return p.frames[0], p.evolved[0], p.motion[0]

    frames, evolved, motion = jax.vmap(one)(inputs, keys)
    return {"frames": frames, "evolved": evolved, "motion": motion}


def forecasts(outputs: dict, items: Items) -> dict[str, np.ndarray]:
    """``{forecaster: (E, n_targets, H, W)}``: the model, then the baselines."""
    return {MODEL: np.asarray(outputs["frames"]), **{k: np.asarray(v) for k, v in items.baselines.items()}}


def forecast_motion(outputs: dict, items: Items) -> dict[str, np.ndarray]:
    """``{forecaster: (E, n_targets, 2, H, W)}`` px/step: the model's per lead, each baseline's one field repeated."""
    n_targets = np.asarray(outputs["motion"]).shape[1]
    out = {MODEL: np.asarray(outputs["motion"])}
    for name, motion in items.baseline_motion.items():
        if name != "persistence":
            out[name] = np.repeat(np.asarray(motion)[:, None], n_targets, axis=1)
    return out


def per_sample_metrics(outputs: dict, items: Items, config: NowcastConfig) -> dict[str, np.ndarray]:
    """Per event and lead time (E, n_targets), for every forecaster (the model unprefixed, the baselines as
    ``<name>.<metric>``): contingency counts, CSI and neighbourhood CSI per threshold, raw and active-area MAE,
    centre-of-mass displacement, mean and differential trend, FSS; and the motion end-point error against the true
    motion (px/step, rainy pixels) where the data carry it."""
    m, d = config.metrics, config.data
    frames = np.asarray(items.events.frames)
    observed, last_input = frames[:, d.n_inputs :], frames[:, d.n_inputs - 1]
    truth = true_motion(items.events, d.n_inputs, d.n_targets)
    motions = forecast_motion(outputs, items)
    out = {}
    for name, forecast in forecasts(outputs, items).items():
        values = verification.field_metrics(
            jnp.asarray(forecast),
            jnp.asarray(observed),
            jnp.asarray(last_input),
            thresholds=tuple(m.thresholds_mmh),
            operator=m.operator,
            nan_policy=m.nan_policy,
            neighbourhood=m.neighbourhood,
            active_threshold=m.active_threshold_mmh,
            fss_scale=m.fss_scale,
            fss_threshold=m.fss_threshold_mmh,
        )
        if truth is not None and name in motions:
            rainy = (observed > 0.1) | (frames[:, d.n_inputs - 1 : -1] > 0.1)
            values["motion_epe"] = baselines.motion_endpoint_error(motions[name], truth, rainy)
        prefix = "" if name == MODEL else f"{name}."
        out |= {f"{prefix}{k}": np.asarray(v) for k, v in values.items()}
    return out


def _lead_index(config: NowcastConfig, minutes: float) -> int | None:
    leads = config.data.lead_times_min
    return leads.index(minutes) if minutes in leads else None


def forecaster_scores(per_sample: dict, prefix: str, config: NowcastConfig) -> dict[str, Any]:
    """One forecaster's aggregates: pooled CSI / neighbourhood CSI per threshold and lead (contingency summed over
    events), the mean over events of MAE, active-area MAE, centroid displacement, FSS and motion error per lead, and
    the named pooled CSIs ``csi_<T>_<lead>min`` (None where no event at that threshold exists)."""
    get = lambda name: per_sample.get(prefix + name)  # noqa: E731
    out: dict[str, Any] = {"per_lead": {}}
    for t in config.metrics.thresholds_mmh:
        for kind in ("", "n"):
            counts = [get(f"{kind}{c}_{t:g}") for c in ("hits", "misses", "false_alarms")]
            if any(c is None for c in counts):
                continue
            csi = np.asarray(verification.pooled_csi(*(jnp.asarray(c) for c in counts)), float)
            out["per_lead"][f"{kind}csi_{t:g}"] = [None if not np.isfinite(v) else float(v) for v in csi]
            for lead in NAMED_LEADS_MIN:
                k = _lead_index(config, lead)
                if k is not None:
                    out[f"{kind}csi_{t:g}_{lead:g}min"] = None if not np.isfinite(csi[k]) else float(csi[k])
    fss = f"fss_{config.metrics.fss_threshold_mmh:g}_s{config.metrics.fss_scale}"
    for name in ("mae", "active_mae_union", "com_r", fss, "motion_epe"):
        values = get(name)
        if values is None:
            continue
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.asarray(values, float), axis=0) if np.any(np.isfinite(values)) else None
        out["per_lead"][name] = None if mean is None else [None if not np.isfinite(v) else float(v) for v in mean]
        for lead in NAMED_LEADS_MIN:
            k = _lead_index(config, lead)
            if k is not None and mean is not None and np.isfinite(mean[k]):
                out[f"{name}_{lead:g}min"] = float(mean[k])
    return out


def score(per_sample: dict, outputs: dict, items: Items, key: jax.Array, config: NowcastConfig) -> dict:
    """The model's aggregates at the top level, each baseline's under its name, the gain over persistence, and the
    verification settings that define them."""
    metrics = forecaster_scores(per_sample, "", config)
    names = [MODEL, *items.baselines]
    for name in items.baselines:
        metrics[name] = forecaster_scores(per_sample, f"{name}.", config)
        metrics[name]["fallback_events"] = int(np.sum(items.baseline_fallback[name]))
    persistence = metrics.get("persistence", {})
    for lead in NAMED_LEADS_MIN:
        ours, theirs = metrics.get(f"csi_16_{lead:g}min"), persistence.get(f"csi_16_{lead:g}min")
        if ours is not None and theirs is not None:
            metrics[f"csi_16_gain_over_persistence_{lead:g}min"] = ours - theirs
    m = config.metrics
    metrics["settings"] = {
        "thresholds_mmh": list(m.thresholds_mmh),
        "operator": m.operator,
        "nan_policy": m.nan_policy,
        "neighbourhood": m.neighbourhood,
        "active_threshold_mmh": m.active_threshold_mmh,
        "lead_times_min": list(config.data.lead_times_min),
        "forecasters": names,
    }
    metrics["test_events"] = int(items.events.num_events)
    return metrics


def features(items: Items, data: NowcastData, config: NowcastConfig) -> dict[str, np.ndarray]:
    """Per test event: mean and peak rain (mm/h) and wet fraction (> 0.1 mm/h) of the last input frame, the observed
    change of mean rain from it to the last target, and the mean true wind speed (px/step; NaN without motion)."""
    frames = np.asarray(items.events.frames, np.float64)
    last = frames[:, config.data.n_inputs - 1]
    motion = items.events.motion
    speed = (
        np.full(len(frames), np.nan)
        if motion is None
        else np.mean(np.hypot(np.asarray(motion)[:, :, 0], np.asarray(motion)[:, :, 1]), axis=(1, 2, 3))
    )
    return {
        "mean_rain_mmh": last.mean(axis=(1, 2)).astype(np.float32),
        "peak_rain_mmh": last.max(axis=(1, 2)).astype(np.float32),
        "wet_fraction": (last > 0.1).mean(axis=(1, 2)).astype(np.float32),
        "observed_trend_mmh": (frames[:, -1].mean(axis=(1, 2)) - last.mean(axis=(1, 2))).astype(np.float32),
        "true_speed_px": speed.astype(np.float32),
    }


def make_task(task_id: str, config: NowcastConfig) -> Task:
    """The registry's factory."""
    return Task(
        id=task_id,
        config=config,
        datacard=datacard(config),
        criteria=CRITERIA,
        generate=generate,
        load=load,
        save=save,
        fit=fit,
        conditions=conditions,
        prepare=lambda params, data, cfg: Forecaster(params.weights, cfg.model, cfg.data),
        evaluate=evaluate,
        per_sample_metrics=lambda outputs, items: per_sample_metrics(outputs, items, config),
        score=lambda per_sample, outputs, items, key: score(per_sample, outputs, items, key, config),
        features=lambda items, data: features(items, data, config),
        summary=report.summary,
        report=report.sections,
        studies={name: studies.STUDIES[name] for name in STUDIES},
        chunk_size=config.chunk_size,
        data_files=nowcastnet.dataset_files,
        validate=checks.validate,
        check_data=checks.check_data,
        packages=PACKAGES,
        undefined_metrics=("*csi_*", "*com_*", "*fss_*", "*active_mae_*", "*motion_epe"),
        format_atol=0.05 + 1e-5,  # 16-bit PNGs of rain / 0.1 mm/h, rounded
    )
