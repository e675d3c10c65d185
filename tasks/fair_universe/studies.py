"""Structural-interpretation studies of ``fair_universe-v0``: where can the mu intervals be trusted?

Each adapter feeds a generic study of :mod:`jaxbench.studies.analyses` with this task's
pseudo-experiments (PEs). They run after the pipeline in the same run directory and reuse its
stages (data, classifier, templates, PE sweep); their own expensive units are checkpointed as
stages or sweep chunks, so ``--resume`` continues an interrupted study.

* ``sample_efficiency`` — the classifier retrained on nested subsets of its training events
  (several seeds); the interval width and coverage score of the same PEs, vs training size.
* ``feature_ood`` — each nuisance parameter pushed to k prior sigmas from its centre (the others
  drawn from their priors): coverage, width and score vs k, and the trusted range where the
  coverage stays above ``trust_coverage_min``.
* ``rotation_scan`` — the PE pool rotated about the beam axis (every azimuth shifted by an
  angle): the physics is invariant, the classifier sees absolute azimuths; metric vs angle.
* ``breakdown`` — the pipeline's per-PE coverage, width, |mu_hat - mu| and pull grouped by
  mu_true and by each nuisance (quantile bins).
* ``correlation`` — the same per-PE metrics against mu_true and the six nuisances.
* ``stability`` — the same (mu, nu) conditions through K Poisson keys: how much a PE's interval
  moves when only the random draw changes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import records
from jaxbench.kernels.coverage import coverage_score
from jaxbench.runner import Run
from jaxbench.studies import StudyResult, analyses
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.systematics import NUISANCE_PRIORS, apply_nominal, sample_nuisances

# Keys of the study streams, folded into the run key after the pipeline's 0..5.
_EFFICIENCY, _OOD, _ROTATION, _STABILITY = 11, 12, 13, 14
PHI_COLUMNS = ("PRI_lep_phi", "PRI_had_phi", "PRI_jet_leading_phi", "PRI_jet_subleading_phi", "PRI_met_phi")
PER_PE_METRICS = ("covered", "width", "abs_error", "pull")


def _context(run: Run, rate_scale: float = 0.0) -> dict:
    """The pipeline's data, estimator and PE function (stages already done are reused).

    ``rate_scale`` raises the static bound of the per-event Poisson means when a study scales
    the yields beyond the priors (the largest mu or normalisation factor it uses).
    """
    from jaxbench.tasks.fair_universe import task as fu
    from jaxbench.tasks.fair_universe.classifier import make_score_fn
    from jaxbench.tasks.fair_universe.pseudo_experiments import max_event_rate, pool_met_noise

    config = run.config
    data_key = jax.random.fold_in(run.key, 0)
    data = run.stage("data", lambda: fu.generate_data(data_key, config) if run.data_path is None
                     else fu.load_data(run.data_path, data_key, config))
    estimator = fu.prepare_estimator(run, data)
    pool = fu.as_pool(data["pool"])
    score_fn = make_score_fn(tuple(config["hidden"]))
    met_noise = pool_met_noise(jax.random.fold_in(run.key, 5), pool)
    max_rate = max_event_rate(pool, max(max(config["mu_values"]), rate_scale))
    pe_fn = jax.jit(fu.make_pe_fn(score_fn, int(config["n_bins"]), max_rate))
    shared = {**pool._asdict(), **estimator["templates"], "params": estimator["params"],
              "key": jax.random.fold_in(run.key, 2), "met_noise": met_noise}
    return {"data": data, "pool": pool, "shared": shared, "pe_fn": pe_fn, "score_fn": score_fn}


def _conditions(key: jax.Array, config: dict, n_per_mu: int) -> dict:
    from jaxbench.tasks.fair_universe import task as fu

    return fu.pe_conditions(key, {**config, "n_pe_per_mu": n_per_mu})


def interval_metrics(out: dict, mu_true) -> dict:
    """Coverage score, coverage, mean width and mean |mu_hat - mu| of the profiled intervals."""
    mu_true = jnp.asarray(mu_true)
    s = coverage_score(mu_true, jnp.asarray(out["profiled_p16"]), jnp.asarray(out["profiled_p84"]))
    half = 0.5 * (np.asarray(out["profiled_p84"]) - np.asarray(out["profiled_p16"]))
    pull = (np.asarray(out["profiled_mu_hat"]) - np.asarray(mu_true)) / half
    return {"quantiles_score": float(s.score), "coverage": float(s.coverage), "width": float(s.width),
            "mae_mu": float(np.mean(np.abs(np.asarray(out["profiled_mu_hat"]) - np.asarray(mu_true)))),
            "mean_pull": float(np.mean(pull))}


def _sweep_in_chunks(pe_fn, shared, conditions: dict, chunk: int = 64) -> dict:
    n = conditions["index"].shape[0]
    parts = [pe_fn(shared, {k: jnp.asarray(v[i:i + chunk]) for k, v in conditions.items()}) for i in range(0, n, chunk)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


# -- sample efficiency ----------------------------------------------------------------------------
def sample_efficiency(run: Run) -> StudyResult:
    from jaxbench.tasks.fair_universe import task as fu

    config = run.config
    ctx = _context(run)
    key = jax.random.fold_in(run.key, _EFFICIENCY)
    train = fu.as_pool(ctx["data"]["train"])
    _, _, passed = apply_nominal(train.pri, train.weights, train.process)
    passed_idx = np.flatnonzero(np.asarray(passed))
    conditions = _conditions(jax.random.fold_in(key, 1), config, int(config["study_pe_per_mu"]))
    pool = ctx["pool"]
    noise_key = jax.random.fold_in(run.key, 5)

    def train_eval(k, idx):
        rows = passed_idx[idx]
        subset = schema.EventPool(train.pri[rows], train.weights[rows], train.process[rows])
        params, history = fu.train_on_pool(k, subset, config)
        templates = fu.fit_templates(params, pool, config, noise_key)
        shared = {**ctx["shared"], **templates, "params": params}
        out = _sweep_in_chunks(ctx["pe_fn"], shared, conditions)
        return {**interval_metrics(out, conditions["mu_true"]),
                "classifier_val_loss": float(np.asarray(history.valid_loss)[-1])}

    sizes = sorted({max(200, int(round(f * passed_idx.size))) for f in config["efficiency_fractions"]})
    seeds = list(range(int(config["efficiency_seeds"])))
    result = analyses.sample_efficiency(train_eval, passed_idx.size, sizes, seeds, key,
                                        stage=run.stage_hook("study.sample_efficiency"))
    return StudyResult(result.study, result.rows, {**result.summary, "n_pseudo_experiments": int(conditions["index"].size)})


# -- feature OOD over each nuisance ---------------------------------------------------------------
def nuisance_at(name: str, sigmas: float) -> float:
    """The value of a nuisance ``sigmas`` prior standard deviations from its prior centre
    (in ln GeV for the lognormal soft_met), without the prior's clipping."""
    prior = next(p for p in NUISANCE_PRIORS if p.name == name)
    value = prior.loc + sigmas * prior.scale
    return float(math.exp(value)) if prior.lognormal else max(float(value), 0.0)  # scales stay >= 0


def feature_ood(run: Run) -> StudyResult:
    config = run.config
    key = jax.random.fold_in(run.key, _OOD)
    sigmas = [float(s) for s in config["ood_sigmas"]]
    names = [n for n in schema.NUISANCES if n in config["systematics"]]
    base = _conditions(jax.random.fold_in(key, 0), config, int(config["study_pe_per_mu"]))
    largest = max([nuisance_at(n, s) for n in ("ttbar_scale", "diboson_scale", "bkg_scale") for s in sigmas] + [1.0])
    ctx = _context(run, rate_scale=largest * max(1.0, nuisance_at("bkg_scale", max(sigmas))))
    n_base = base["index"].size
    blocks = []
    for j, name in enumerate(names):
        for b, s in enumerate(sigmas):
            nu = base["nu_true"].copy()
            nu[:, schema.NUISANCES.index(name)] = nuisance_at(name, s)
            offset = (j * len(sigmas) + b) * n_base
            blocks.append({"index": base["index"] + offset, "mu_true": base["mu_true"], "nu_true": nu})
    conditions = {k: np.concatenate([blk[k] for blk in blocks]) for k in blocks[0]}
    outputs = run.sweep("study.feature_ood", ctx["pe_fn"], ctx["shared"], conditions,
                        chunk_size=int(config["chunk_size"]), description="feature OOD pseudo-experiments")
    target = {"coverage": (float(config["trust_coverage_min"]), True)}
    parts = []
    for j, name in enumerate(names):
        def evaluate(b, j=j):
            sl = slice((j * len(sigmas) + b) * n_base, (j * len(sigmas) + b + 1) * n_base)
            return interval_metrics({k: v[sl] for k, v in outputs.items()}, conditions["mu_true"][sl])

        labels = [f"{name}={nuisance_at(name, s):.4g} ({s:+g} sigma)" for s in sigmas]
        parts.append(analyses.feature_ood(evaluate, labels, sigmas, name, support=[n_base] * len(sigmas),
                                          target=target))
    rows = tuple(r for p in parts for r in p.rows)
    summary = {"distance_unit": "prior standard deviations from the prior centre (ln GeV for soft_met)",
               "pseudo_experiments_per_point": n_base, "trust_coverage_min": float(config["trust_coverage_min"]),
               **{k: v for p in parts for k, v in p.summary.items()}}
    return StudyResult("feature_ood", rows, summary)


# -- rotation about the beam axis ----------------------------------------------------------------
def rotate_azimuth(pri: jax.Array, angle: float) -> jax.Array:
    """Every azimuth of the PRI features shifted by ``angle`` (radians), wrapped to [-pi, pi);
    missing jets (-25) stay missing."""
    cols = jnp.asarray([schema.PRI[c] for c in PHI_COLUMNS])
    phi = pri[:, cols]
    rotated = jnp.mod(phi + angle + jnp.pi, 2 * jnp.pi) - jnp.pi
    return pri.at[:, cols].set(jnp.where(phi == schema.MISSING, phi, rotated))


def rotation_scan(run: Run) -> StudyResult:
    config = run.config
    ctx = _context(run)
    conditions = _conditions(jax.random.fold_in(run.key, _ROTATION), config, int(config["study_pe_per_mu"]))
    angles = np.linspace(0.0, 2 * np.pi, int(config["rotation_angles"]), endpoint=False)

    def evaluate(angle):
        # The soft-MET noise directions turn with the event, so the rotation is an exact symmetry
        # of the simulated physics: what changes is only what the classifier does with azimuths.
        c, s = np.cos(angle), np.sin(angle)
        noise = ctx["shared"]["met_noise"] @ jnp.asarray([[c, s], [-s, c]], jnp.float32)
        shared = {**ctx["shared"], "pri": rotate_azimuth(ctx["shared"]["pri"], angle), "met_noise": noise}
        # The same PE keys at every angle: differences come from the rotation alone.
        out = _sweep_in_chunks(ctx["pe_fn"], shared, conditions)
        return {**interval_metrics(out, conditions["mu_true"]), "mean_mu_hat_minus_mu": float(
            np.mean(out["profiled_mu_hat"] - conditions["mu_true"]))}

    result = analyses.rotation_scan(evaluate, list(angles), stage=run.stage_hook("study.rotation_scan"))
    return StudyResult(result.study, result.rows, {**result.summary, "axis": "beam (z): azimuths shifted",
                                                   "n_pseudo_experiments": int(conditions["index"].size)})


# -- breakdown and correlation of the pipeline's PEs ----------------------------------------------
def _per_pe(run: Run) -> tuple[dict, dict]:
    from jaxbench.tasks.fair_universe import task as fu

    pe = records.read_arrays(run.path("arrays", "pseudo_experiments"))
    prediction = {k: jnp.asarray(pe[f"profiled_{k}"]) for k in ("mu_hat", "p16", "p84")}
    metrics = {k: np.asarray(v) for k, v in fu.per_sample_metrics(prediction, {"mu_true": jnp.asarray(pe["mu_true"])}).items()}
    features = {"mu_true": pe["mu_true"], **{name: pe["nu_true"][:, i] for i, name in enumerate(schema.NUISANCES)
                                             if name in run.config["systematics"]}}
    return metrics, features


def breakdown(run: Run) -> StudyResult:
    metrics, features = _per_pe(run)
    mu_values = np.asarray(run.config["mu_values"], np.float32)
    groupings = {"mu_true": (np.searchsorted(mu_values, features["mu_true"]), [f"{m:g}" for m in mu_values], mu_values)}
    for name, values in features.items():
        if name != "mu_true":
            ids, labels, centres = analyses.bin_feature(values, int(run.config["breakdown_bins"]))
            groupings[name] = (ids, labels, centres)
    return analyses.per_sample_breakdown(metrics, groupings)


def correlation(run: Run) -> StudyResult:
    metrics, features = _per_pe(run)
    return analyses.metric_correlation(metrics, features)


# -- stability over Poisson keys ------------------------------------------------------------------
def stability(run: Run) -> StudyResult:
    config = run.config
    ctx = _context(run)
    key = jax.random.fold_in(run.key, _STABILITY)
    n = int(config["stability_conditions"])
    mus = np.resize(np.asarray(config["mu_values"], np.float32), n)
    conditions = {"index": np.zeros(n, np.int32), "mu_true": mus,
                  "nu_true": np.asarray(sample_nuisances(jax.random.fold_in(key, 0), n), np.float32)}

    def predict(k):
        # Each condition gets its own draw: index i with root k.
        shared = {**ctx["shared"], "key": k}
        out = _sweep_in_chunks(ctx["pe_fn"], shared, {**conditions, "index": np.arange(n, dtype=np.int32)})
        mu = conditions["mu_true"]
        return {"mu_hat": out["profiled_mu_hat"], "width": out["profiled_p84"] - out["profiled_p16"],
                "covered": ((out["profiled_p16"] <= mu) & (mu <= out["profiled_p84"])).astype(np.float32)}

    def staged_predict(k):
        i = int(jax.random.randint(k, (), 0, 2**30))
        return run.stage(f"study.stability.k{i}", lambda: predict(k))

    # Sequential over keys: every PE already spans the whole pool (a vmap would batch pool-sized
    # intermediates K times).
    result = analyses.prediction_stability(staged_predict, jax.random.fold_in(key, 1), int(config["stability_keys"]),
                                           use_vmap=False)
    return StudyResult(result.study, result.rows, {**result.summary, "conditions": n}, result.arrays)


ADAPTERS = {
    "sample_efficiency": sample_efficiency,
    "feature_ood": feature_ood,
    "rotation_scan": rotation_scan,
    "breakdown": breakdown,
    "correlation": correlation,
    "stability": stability,
}
