"""``fair_universe-v0``: a 68.27% interval on the Higgs signal strength under six systematics.

data: a classifier-training pool and a pseudo-experiment (PE) pool, generated (normalised to the
challenge's yields after cuts) or read from the published parquet; fit: the classifier and the
nuisance-aware templates; conditions: (mu_true, nu_true) per PE; evaluate: Poisson counts over
the pool, score histogram, profiled and statistical-only fits; score: the coverage score.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.studies import generic
from jaxbench.task import Stage, Task

from . import checks, io, report, schema, studies
from .checks import TRAIN_ROWS_KEY
from .config import CRITERIA, FairUniverseConfig, datacard
from .derived import derived_features
from .estimator import Params, PEShared, fit_templates, make_pe_fn, prepare_shared, train_on_pool
from .generator import generate_pool, normalise_to_yields
from .pseudo_experiments import max_event_rate, pool_met_noise
from .schema import Conditions, Data
from .scoring import per_sample_metrics, score, summary
from .systematics import sample_nuisances

PACKAGES = ("pyarrow", "pandas")  # beyond the core's: io reads parquet, submission builds data frames


def _with_noise(key: jax.Array, train: schema.EventPool, pool: schema.EventPool) -> Data:
    return Data(train, pool, pool_met_noise(jax.random.split(key, 3)[2], pool))


def generate(key: jax.Array, config: FairUniverseConfig) -> Data:
    """Both pools from the embedded generator, normalised to the challenge's yields."""
    train_key, pool_key, _ = jax.random.split(key, 3)
    return _with_noise(
        key,
        normalise_to_yields(generate_pool(train_key, config.data.train_events)),
        normalise_to_yields(generate_pool(pool_key, config.data.pool_events)),
    )


def load(path: Path, key: jax.Array, config: FairUniverseConfig) -> Data:
    """A published parquet file: halves (keyed) as the two pools, weights doubled to keep the yields;
    a file jaxbench wrote keeps its own split (metadata ``jaxbench_train_rows``). A file too small for
    the config fails here (``checks.check_data``), before the data stage is written."""
    loaded = io.load_parquet(path)
    pool = jax.tree.map(np.asarray, loaded.pool)
    split = loaded.metadata.get(TRAIN_ROWS_KEY)
    if split is None:
        order, scale = np.asarray(jax.random.permutation(jax.random.split(key, 3)[0], pool.num_events)), 2.0
        split = len(order) // 2
    else:
        order, scale = np.arange(pool.num_events), 1.0

    def take(rows):
        return schema.EventPool(
            jnp.asarray(pool.pri[rows]), jnp.asarray(pool.weights[rows] * scale), jnp.asarray(pool.process[rows])
        )

    data = _with_noise(key, take(order[:split]), take(order[split:]))
    checks.check_data(data, config, path.name, "pass a larger file with every process")
    return data


def save(path: Path, data: Data, config: FairUniverseConfig) -> Path:
    """Both pools as one parquet file in the release's layout (training rows first)."""
    file = Path(path) / "FAIR_Universe_HiggsML_data.parquet"
    file.parent.mkdir(parents=True, exist_ok=True)
    both = jax.tree.map(lambda a, b: np.concatenate([a, b]), data.train, data.pool)
    io.write_parquet(file, both, derived_features(jnp.asarray(both.pri)), {TRAIN_ROWS_KEY: data.train.num_events})
    return file


def fit(key: jax.Array, data: Data, config: FairUniverseConfig, stage: Stage) -> Params:
    """The classifier on the training pool, then the templates of its score on the PE pool."""
    classifier, history = stage("classifier", lambda: train_on_pool(key, data.train, config.classifier))
    templates = stage("templates", lambda: fit_templates(classifier, data.pool, data.met_noise, config.analysis.n_bins))
    return Params(classifier, history, templates)


def pe_conditions(key: jax.Array, config: FairUniverseConfig) -> Conditions:
    """mu values repeated ``n_pe_per_mu`` times; nuisances drawn from the priors (the others nominal)."""
    analysis = config.analysis
    mus = np.repeat(np.asarray(analysis.mu_values, np.float32), analysis.n_pe_per_mu)
    nus = np.asarray(sample_nuisances(key, mus.shape[0]), np.float32)
    varied = np.array([name in analysis.systematics for name in schema.NUISANCES])
    return Conditions(mus, np.where(varied[None, :], nus, schema.NOMINAL_NUISANCES[None, :]))


def prepare(params: Params, data: Data, config: FairUniverseConfig) -> PEShared:
    """The prepared PE pool, templates and classifier, with the Poisson bound of the largest mu."""
    rate = max_event_rate(data.pool, max(config.analysis.mu_values))
    return prepare_shared(params.classifier, params.templates, data.pool, data.met_noise, rate)


def features(items: Conditions, data: Data, systematics: tuple[str, ...] = schema.NUISANCES) -> dict:
    """mu_true and every nuisance that varies per PE."""
    return {
        "mu_true": np.asarray(items.mu_true),
        **{n: np.asarray(items.nu_true)[:, i] for i, n in enumerate(schema.NUISANCES) if n in systematics},
    }


def make_task(task_id: str, config: FairUniverseConfig) -> Task:
    """The registry's factory."""
    s = config.studies
    return Task(
        id=task_id,
        config=config,
        datacard=datacard(config),
        criteria=CRITERIA,
        generate=generate,
        load=load,
        save=save,
        fit=fit,
        conditions=lambda key, data, cfg: pe_conditions(key, cfg),
        prepare=prepare,
        evaluate=make_pe_fn(),
        per_sample_metrics=per_sample_metrics,
        score=lambda per_sample, outputs, items, key: score(per_sample, outputs, items, key, config),
        features=lambda items, data: features(items, data, config.analysis.systematics),
        summary=summary,
        report=report.sections,
        files=lambda metrics: {
            "scores.json": {**metrics["profiled"]["codabench"], "n_dropped": metrics.get("n_dropped", 0)}
        },
        studies={
            "sample_efficiency": studies.SAMPLE_EFFICIENCY,
            "rotation_scan": studies.ROTATION_SCAN,
            "feature_ood": studies.FEATURE_OOD,
            "variants": studies.AZIMUTH_VARIANTS,
            "attribution": studies.ATTRIBUTION,
            "breakdown": generic.breakdown(s.breakdown_bins),
            "correlation": generic.correlation(),
            "stability": generic.stability(s.stability_conditions, s.stability_keys),
        },
        chunk_size=config.chunk_size,
        validate=checks.validate,
        check_data=lambda data, cfg: checks.check_data(data, cfg),
        packages=PACKAGES,
        partial=True,  # PEs without a finite interval are dropped and counted (scoring.scored): "degraded"
    )
