"""Assembles the ``fair_universe-v0`` Task: data, reference estimator, criteria and pipeline.

Pipeline (each step checkpointed by the runner, so ``--resume`` continues where it stopped):
  1. data: a training pool for the classifier and a pseudo-experiment (PE) pool, from the
     embedded generator (weights normalised to the challenge's yields after the analysis cuts)
     or from a published parquet file (split in two by a keyed permutation);
  2. classifier: signal-vs-background network on the 28 features;
  3. templates: score binning and the nuisance-dependent templates from the PE pool;
  4. pseudo_experiments: for each (mu_true, nu_true): systematics on the whole pool, a Poisson
     count per pool event, the score histogram and two fits (profiled, statistical-only), vmapped
     and sharded over devices;
  5. scoring: coverage score (pooled, per mu_true, bootstrap error), scores.json, arrays, report.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import records
from jaxbench.errors import ConfigError
from jaxbench.kernels.coverage import bootstrap_coverage_score, codabench_scores, coverage_score, per_group_coverage
from jaxbench.kernels.likelihood import make_profile_fit
from jaxbench.runner import Run
from jaxbench.task import Criterion, Task
from jaxbench.kernels.segments import segment_sum, weighted_column_sums
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.classifier import make_score_fn, train_classifier
from jaxbench.tasks.fair_universe.generator import generate_pool
from jaxbench.tasks.fair_universe.pseudo_experiments import (
    PreparedPool,
    block_passes,
    draw_counts,
    had_pt_order,
    max_event_rate,
    pe_key,
    pool_met_noise,
    prepare_pool,
    prepared_pool_matches,
)
from jaxbench.tasks.fair_universe.systematics import apply_nominal, sample_nuisances, shifted_feature_columns
from jaxbench.tasks.fair_universe.templates import (
    ALPHA_CENTER,
    ALPHA_SIGMA,
    TemplateModel,
    build_templates,
    event_features,
    expected_counts,
    make_binned_yields,
    signal_quantile_edges,
    soft_histogram,
)


CRITERIA = (
    Criterion("profiled.quantiles_score", True, None,
              "coverage score -ln((mean width + 1e-3) * f(coverage)) of the [p16, p84] intervals over all PEs"),
    Criterion("profiled.coverage", True, None,
              "fraction of PEs whose interval contains mu_true; calibrated when within 0.6827 +- 2 sigma68 "
              "(outside that band the score's penalty f grows)"),
    Criterion("profiled.interval", False, None, "mean interval width |p84 - p16|"),
)

DATACARD = {
    "what": "Simulated H->tautau (lepton + hadronic tau) events at 13 TeV-like kinematics and their "
    "backgrounds Z->tautau, ttbar and diboson, as in the FAIR Universe HiggsML Uncertainty Challenge.",
    "source": "embedded JAX event generator (resonance production, tau decays, ttbar and diboson "
    "decay chains, detector smearing) or the official parquet via --data",
    "yields": "per PE at 10 fb^-1 after cuts: 1015*mu signal, 1,002,395 Z->tautau, 44,192 ttbar, 3,783 diboson",
    "features": "16 PRI (GeV, radians) + 12 DER; missing jets = -25",
    "systematics": "tes, jes, soft_met (shape); ttbar_scale, diboson_scale, bkg_scale (normalisation)",
    "estimator": "MLP classifier -> signal-quantile score bins -> binned Poisson profile likelihood with "
    "Gaussian constraints on six nuisances; templates measured on the PE pool itself (no template "
    "statistics error), so the benchmark isolates the treatment of systematics",
}


def validate_config(task_id: str, config: dict) -> None:
    """Checks values that have a physical meaning; errors name the key and the fix."""
    unknown = [s for s in config["systematics"] if s not in schema.NUISANCES]
    if unknown:
        raise ConfigError(f"{task_id}: unknown systematics {unknown}; choose from {', '.join(schema.NUISANCES)}.")
    mus = np.asarray(config["mu_values"], float)
    if mus.size == 0 or np.any(~np.isfinite(mus)) or np.any(mus < 0):
        raise ConfigError(f"{task_id}: mu_values must be finite and >= 0 (got {config['mu_values']}).")
    for key in ("pool_events", "train_events"):
        if len(config[key]) != len(schema.PROCESSES) or min(config[key]) < 100:
            raise ConfigError(f"{task_id}: {key} needs {len(schema.PROCESSES)} counts >= 100 "
                              f"(one per process {schema.PROCESSES}), got {config[key]}.")
    for key in ("n_pe_per_mu", "epochs", "n_bins", "chunk_size", "batch_size"):
        if int(config[key]) < 1:
            raise ConfigError(f"{task_id}: {key} must be >= 1 (got {config[key]}).")


def normalise_to_yields(pool: schema.EventPool) -> schema.EventPool:
    """Rescales each process so its weights after the nominal analysis cuts sum to the challenge yield."""
    _, _, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    sums = segment_sum(jnp.where(passed, pool.weights, 0.0), pool.process, len(schema.PROCESSES))
    targets = jnp.asarray([schema.EXPECTED_YIELDS[p] for p in schema.PROCESSES], jnp.float32)
    return pool._replace(weights=pool.weights * (targets / sums)[pool.process])


def generate_data(key: jax.Array, config: dict) -> dict:
    """The two pools from the embedded generator (independent keys)."""
    train_key, pool_key = jax.random.split(key)
    train = normalise_to_yields(generate_pool(train_key, tuple(config["train_events"])))
    pool = normalise_to_yields(generate_pool(pool_key, tuple(config["pool_events"])))
    return {"train": train._asdict(), "pool": pool._asdict()}


def load_data(path: str | Path, key: jax.Array, config: dict) -> dict:
    """A published parquet file, split in half (keyed) into the training and PE pools."""
    from jaxbench.tasks.fair_universe.io import load_parquet

    loaded = load_parquet(path)
    pool = loaded.pool
    order = np.asarray(jax.random.permutation(key, pool.num_events))
    half = len(order) // 2

    def take(rows, scale):
        return schema.EventPool(jnp.asarray(pool.pri)[rows], jnp.asarray(pool.weights)[rows] * scale,
                                jnp.asarray(pool.process)[rows])._asdict()

    # Each half carries half of the events, so its weights are doubled to keep the yields.
    return {"train": take(order[:half], 2.0), "pool": take(order[half:], 2.0)}


def as_pool(d: dict) -> schema.EventPool:
    return schema.EventPool(jnp.asarray(d["pri"]), jnp.asarray(d["weights"]), jnp.asarray(d["process"]))


def pe_conditions(key: jax.Array, config: dict) -> dict:
    """mu_true, nu_true and the index of every PE: mu values repeated, nuisances from the priors."""
    mus = np.repeat(np.asarray(config["mu_values"], np.float32), int(config["n_pe_per_mu"]))
    nus = np.asarray(sample_nuisances(key, mus.shape[0]), np.float32)
    varied = np.array([name in config["systematics"] for name in schema.NUISANCES])
    nus = np.where(varied[None, :], nus, schema.NOMINAL_NUISANCES[None, :])
    return {"index": np.arange(mus.shape[0], dtype=np.int32), "mu_true": mus, "nu_true": nus}


# A large soft_met (3-5 GeV, ~1.5 sigma in ln soft_met) is far from the start of the fit in a very
# non-linear direction: 12 Newton steps left half of those fits unconverged, 40 converge all.
NEWTON_STEPS, CROSSING_STEPS = 40, 16


def make_pe_fn(score_fn, n_bins: int, max_rate: float):
    """``pe(shared, items) -> outputs``: one PE per item; the runner shards the items over devices.

    ``shared`` holds the pool (``pri``, ``weights``, ``process``), ``met_noise``, the templates, the
    classifier ``params`` and the root ``key``, and optionally ``prepared``, the pool's
    ``prepare_pool`` (``with_prepared_pool``): made once per pool, it spares every call the per-pool
    invariants (~15 ms on 2 CPU cores for 270k events), and its events are sorted so that PEs skip
    the blocks that fail the cuts. A ``prepared`` of another pool (``pri`` replaced, say) is
    detected, and the pool prepared again, in pool order.

    Per PE: Poisson counts over the whole pool, then block by block of events (``lax.map``, so a
    block's intermediates stay in cache) the features after systematics (``shifted_feature_columns``),
    the classifier and the soft histogram; blocks whose events all fail the cuts are skipped (the
    prepared pool is sorted by had pT: at tes ~ 1, about a fifth of the blocks). Within a device
    the PEs run one after another (``lax.map``): measured on CPU a ``vmap`` over PEs was 1.7x slower
    (it batches every pool-sized intermediate). The fits stay per PE too: batched over the PEs of
    a call they were ~0.5 ms per PE faster, but their float32 rounding then depended on the batch
    size, i.e. on the device count.
    """

    def histogram(shared, prepared: PreparedPool, item):
        nu = item["nu_true"]
        counts = draw_counts(pe_key(shared["key"], item["index"]), prepared, item["mu_true"], nu, max_rate)

        def block_histogram(invariants, block_counts):
            columns, _ = shifted_feature_columns(invariants, nu)
            n_pri = len(schema.PRI_COLUMNS)  # two column blocks: XLA stacks and multiplies them concurrently
            features = (jnp.stack(columns[:n_pri], axis=-1), jnp.stack(columns[n_pri:], axis=-1))
            return soft_histogram(block_counts, score_fn(shared["params"], features), shared["edges"])

        def block_or_skip(args):  # a block where every event fails the cuts draws no event
            passes, invariants, block_counts = args
            n_bins = shared["edges"].shape[0] - 1
            return jax.lax.cond(passes, block_histogram, lambda *_: jnp.zeros(n_bins, jnp.float32),
                                invariants, block_counts)

        per_block = jax.lax.map(block_or_skip, (block_passes(prepared, nu), prepared.invariants, counts))
        return {"hist": weighted_column_sums(jnp.ones_like(per_block[:, 0]), per_block), "n_events": jnp.sum(counts)}

    def fits(shared, hist):
        model = TemplateModel(shared["edges"], shared["nominal"], shared["coef"])

        def expected(mu, alpha):
            return expected_counts(model, mu, alpha)

        out = {}
        for name, profile in (("profiled", True), ("stat_only", False)):
            fit = make_profile_fit(expected, ALPHA_CENTER, ALPHA_SIGMA, profile=profile,
                                   newton_steps=NEWTON_STEPS, crossing_steps=CROSSING_STEPS)(hist)
            out.update({f"{name}_mu_hat": fit.mu_hat, f"{name}_p16": fit.p16, f"{name}_p84": fit.p84,
                        f"{name}_converged": fit.converged})
        return out

    def one(shared, prepared, item):
        out = histogram(shared, prepared, item)
        return {**out, **fits(shared, out["hist"])}

    def pe(shared, items):
        prepared = _prepared_pool(shared)
        return jax.lax.map(lambda item: one(shared, prepared, item), items)

    return pe


def with_prepared_pool(shared: dict) -> dict:
    """``shared`` of ``make_pe_fn`` plus ``prepared``: the pool's invariants computed once, its events
    sorted by had pT (so each PE skips the blocks that fail the cuts)."""
    pool = schema.EventPool(shared["pri"], shared["weights"], shared["process"])
    return {**shared, "prepared": jax.jit(prepare_pool)(pool, shared["met_noise"], had_pt_order(pool))}


def _prepared_pool(shared: dict) -> PreparedPool:
    """``shared["prepared"]`` if it was made from ``shared``'s pool and noise, else the pool prepared now."""
    pool = schema.EventPool(shared["pri"], shared["weights"], shared["process"])
    given = shared.get("prepared")
    if given is None:
        return prepare_pool(pool, shared["met_noise"])

    def fresh():  # in the layout of the given one
        return prepare_pool(pool, shared["met_noise"], n_blocks=given.weights.shape[0])  # unsorted: no XLA sort

    if jax.tree.map(jnp.shape, jax.eval_shape(fresh)) != jax.tree.map(jnp.shape, given):
        return fresh()  # made for a pool of another size
    return jax.lax.cond(prepared_pool_matches(given, pool, shared["met_noise"]), lambda: given, fresh)


def pipeline(run: Run) -> dict:
    """The end-to-end benchmark; returns the metrics written to metrics.json."""
    from jaxbench.tasks.fair_universe import report as fu_report

    config = run.config
    data_key, _, pe_root, nuisance_key, boot_key = (jax.random.fold_in(run.key, i) for i in range(5))
    data_path = run.data_path

    def make_data():
        if data_path is None:
            return generate_data(data_key, config)
        return load_data(data_path, data_key, config)

    data = run.stage("data", make_data)
    pool = as_pool(data["pool"])
    run.data_checksums["pool"] = records.sha256_arrays({k: np.asarray(v) for k, v in data["pool"].items()})
    run.data_checksums["train"] = records.sha256_arrays({k: np.asarray(v) for k, v in data["train"].items()})
    if data_path is not None:
        run.data_checksums[str(data_path)] = records.sha256_file(data_path)

    estimator = prepare_estimator(run, data)
    params, templates, history = estimator["params"], estimator["templates"], estimator["history"]
    n_bins = int(config["n_bins"])
    score_fn = make_score_fn(tuple(config["hidden"]))
    conditions = pe_conditions(nuisance_key, config)
    met_noise = pool_met_noise(jax.random.fold_in(run.key, 5), pool)
    shared = {**pool._asdict(), **templates, "params": params, "key": pe_root, "met_noise": met_noise}
    max_rate = max_event_rate(pool, max(config["mu_values"]))
    outputs = run.sweep("pseudo_experiments", make_pe_fn(score_fn, n_bins, max_rate), shared, conditions,
                        chunk_size=int(config["chunk_size"]), description="pseudo-experiments")
    per_pe = {**conditions, **outputs}
    records.write_arrays(run.path("arrays", "pseudo_experiments"), per_pe)
    records.write_arrays(run.path("arrays", "templates"), {k: np.asarray(v) for k, v in templates.items()})
    records.write_arrays(run.path("arrays", "classifier_history"),
                         {k: np.asarray(v) for k, v in history.items()})
    fu_report.write_feature_sample(run, pool)

    metrics = score_pseudo_experiments(per_pe, config, boot_key)
    records.atomic_write_json(run.path("scores.json"), metrics["profiled"]["codabench"])
    fu_report.finish(run, metrics)
    return metrics


def train_on_pool(key: jax.Array, train: schema.EventPool, config: dict):
    """The classifier trained on the events of ``train`` that pass the nominal analysis cuts."""
    pri, weights, passed = apply_nominal(train.pri, train.weights, train.process)
    keep = np.asarray(passed)
    return train_classifier(
        key, event_features(pri)[keep], train.labels[keep], weights[keep], hidden=tuple(config["hidden"]),
        epochs=int(config["epochs"]), batch_size=int(config["batch_size"]),
        learning_rate=float(config["learning_rate"]))


def prepare_estimator(run: Run, data: dict) -> dict:
    """Stages 'classifier' and 'templates': the trained network and the nuisance-aware templates."""
    config = run.config
    train_key, noise_key = jax.random.fold_in(run.key, 1), jax.random.fold_in(run.key, 5)
    train, pool = as_pool(data["train"]), as_pool(data["pool"])

    def make_classifier():
        params, history = train_on_pool(train_key, train, config)
        return {"params": params, "history": history._asdict()}

    classifier = run.stage("classifier", make_classifier)
    params = classifier["params"]

    templates = run.stage("templates", lambda: fit_templates(params, pool, config, noise_key))
    return {"params": params, "history": classifier["history"], "templates": templates}


def fit_templates(params, pool: schema.EventPool, config: dict, noise_key: jax.Array) -> dict:
    """Score bins of equal expected signal and the nuisance-aware templates of a trained classifier."""
    n_bins = int(config["n_bins"])
    score_fn = make_score_fn(tuple(config["hidden"]))
    pri, weights, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    score = jax.jit(score_fn)(params, event_features(pri))
    signal_weight = jnp.where(passed & (pool.process == schema.SIGNAL), weights, 0.0)
    edges = signal_quantile_edges(score, signal_weight, n_bins)
    met_noise = pool_met_noise(noise_key, pool)  # the same directions the PEs use
    return build_templates(make_binned_yields(score_fn, n_bins), params, pool, edges, met_noise)._asdict()


def score_pseudo_experiments(per_pe: dict, config: dict, key: jax.Array) -> dict:
    """Coverage score of both estimators: pooled, per mu_true, bootstrap error and the Codabench layout."""
    mu_true = jnp.asarray(per_pe["mu_true"])
    group = np.searchsorted(np.asarray(config["mu_values"], np.float32), per_pe["mu_true"])
    metrics = {"n_pseudo_experiments": int(mu_true.shape[0]), "mu_values": list(map(float, config["mu_values"]))}
    for name in ("profiled", "stat_only"):
        mu_hat, p16, p84 = (jnp.asarray(per_pe[f"{name}_{k}"]) for k in ("mu_hat", "p16", "p84"))
        pooled = coverage_score(mu_true, p16, p84)
        boot = bootstrap_coverage_score(key, mu_true, p16, p84, num_resamples=int(config["n_bootstrap"]))
        groups = per_group_coverage(mu_true, p16, p84, jnp.asarray(group), len(config["mu_values"]))
        half_width = 0.5 * (p84 - p16)
        metrics[name] = {
            "quantiles_score": float(pooled.score),
            "quantiles_score_bootstrap_std": float(jnp.std(boot.score, ddof=1)),
            "coverage": float(pooled.coverage),
            "interval": float(pooled.width),
            "penalty": float(pooled.penalty),
            "rmse_mu": float(jnp.sqrt(jnp.mean((mu_hat - mu_true) ** 2))),
            "mae_mu": float(jnp.mean(jnp.abs(mu_hat - mu_true))),
            "mean_pull": float(jnp.mean((mu_hat - mu_true) / half_width)),
            "std_pull": float(jnp.std((mu_hat - mu_true) / half_width)),
            "converged_fraction": float(np.mean(per_pe[f"{name}_converged"])),
            "per_mu": {k: np.asarray(v).tolist() for k, v in groups._asdict().items()},
            "codabench": codabench_scores(mu_true, mu_hat, p16, p84),
        }
    return metrics


def per_sample_metrics(prediction: dict, batch: dict) -> dict:
    """Per-PE: covered (0/1), interval width, |mu_hat - mu_true| and pull."""
    mu = batch["mu_true"]
    p16, p84, mu_hat = prediction["p16"], prediction["p84"], prediction["mu_hat"]
    return {
        "covered": ((p16 <= mu) & (mu <= p84)).astype(jnp.float32),
        "width": jnp.abs(p84 - p16),
        "abs_error": jnp.abs(mu_hat - mu),
        "pull": (mu_hat - mu) / (0.5 * (p84 - p16)),
    }


def make_task(task_id: str, config: dict) -> Task:
    """Factory used by the registry."""
    from jaxbench.tasks.fair_universe import report as fu_report
    from jaxbench.tasks.fair_universe.config import STUDIES
    from jaxbench.tasks.fair_universe.studies import ADAPTERS

    validate_config(task_id, config)
    hidden = tuple(config["hidden"])
    score_fn = make_score_fn(hidden)

    def init(key, dataset):
        return train_on_pool(key, as_pool(dataset["train"]), config)[0]

    def apply(params, batch, key=None):
        return score_fn(params, event_features(batch["pri"]))

    return Task(
        id=task_id,
        config=config,
        datacard=DATACARD,
        criteria=CRITERIA,
        generate=generate_data,
        load=load_data,
        init=init,
        apply=apply,
        per_sample_metrics=per_sample_metrics,
        pipeline=pipeline,
        report_sections=fu_report.sections,
        studies={name: ADAPTERS[name] for name in STUDIES},
    )
