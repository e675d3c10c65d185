"""Pseudo-experiments per second: the reference way (numpy + iminuit, one PE at a time) vs jaxbench.

Both ways use the same event pool, classifier, templates and PE conditions (mu_true, nu_true):

  reference: for each PE, a Poisson count per pool event (numpy), materialise the rows
             (np.repeat), systematics and derived features on the rows (vectorised numpy,
             float64, as the challenge's pandas code does), the classifier forward pass (numpy),
             np.histogram, and an iminuit MIGRAD + MINOS fit of the same profile likelihood;
  jaxbench:  the task's ``evaluate`` (``estimator.make_pe_fn``) through the runner's sweep, on the
             pool prepared once (``prepare``: what no nuisance changes, sorted and cut in blocks): per
             PE, Poisson counts over the fixed pool (never materialised rows), then block by
             block the systematics from the invariants, classifier and soft histogram, and the
             two profile fits; jitted, lax.map over the PEs of a device, sharded over devices.

Usage: python scripts/bench_pseudo_experiments.py [--reference-pes 8] [--jax-pes 256]
Prints one table with PEs/second of both ways and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def numpy_systematics_and_features(rows: np.ndarray, nu: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Vectorised numpy float64 tes/jes/soft_met + cuts + DER features on materialised rows (n, 16).

    Returns the 28 features of the rows that pass the cuts.
    """
    from jaxbench.tasks.fair_universe.schema import HAD_PT_MIN, JET_PT_MIN, LEP_PT_MIN, PRI

    x = rows.astype(np.float64)
    c = {name: x[:, i].copy() for name, i in PRI.items()}
    tes, jes, soft_met = (float(v) for v in nu[:3])
    nj = c["PRI_n_jets"]
    j1 = np.where(nj >= 1, c["PRI_jet_leading_pt"], 0.0)
    j2 = np.where(nj >= 2, c["PRI_jet_subleading_pt"], 0.0)
    mx = (
        c["PRI_met"] * np.cos(c["PRI_met_phi"])
        - (tes - 1) * c["PRI_had_pt"] * np.cos(c["PRI_had_phi"])
        - (jes - 1) * (j1 * np.cos(c["PRI_jet_leading_phi"]) + j2 * np.cos(c["PRI_jet_subleading_phi"]))
    )
    my = (
        c["PRI_met"] * np.sin(c["PRI_met_phi"])
        - (tes - 1) * c["PRI_had_pt"] * np.sin(c["PRI_had_phi"])
        - (jes - 1) * (j1 * np.sin(c["PRI_jet_leading_phi"]) + j2 * np.sin(c["PRI_jet_subleading_phi"]))
    )
    mx, my = mx + soft_met * noise[:, 0], my + soft_met * noise[:, 1]
    c["PRI_met"], c["PRI_met_phi"] = np.hypot(mx, my), np.arctan2(my, mx)
    c["PRI_had_pt"] = c["PRI_had_pt"] * tes
    c["PRI_jet_leading_pt"] = np.where(nj >= 1, c["PRI_jet_leading_pt"] * jes, -25.0)
    c["PRI_jet_subleading_pt"] = np.where(nj >= 2, c["PRI_jet_subleading_pt"] * jes, -25.0)
    c["PRI_jet_all_pt"] = c["PRI_jet_all_pt"] * jes
    keep = (c["PRI_had_pt"] >= HAD_PT_MIN) & (c["PRI_lep_pt"] >= LEP_PT_MIN)
    c = {k: v[keep] for k, v in c.items()}
    nj = c["PRI_n_jets"]
    f1 = (nj >= 1) & (c["PRI_jet_leading_pt"] <= JET_PT_MIN)
    f2 = (nj >= 2) & (c["PRI_jet_subleading_pt"] <= JET_PT_MIN)
    c["PRI_jet_all_pt"] = np.where(f1, 0.0, np.where(f2, c["PRI_jet_leading_pt"], c["PRI_jet_all_pt"]))
    c["PRI_n_jets"] = np.where(f1, 0.0, np.where(f2, 1.0, nj))
    for q in ("pt", "eta", "phi"):
        c[f"PRI_jet_leading_{q}"] = np.where(f1, -25.0, c[f"PRI_jet_leading_{q}"])
        c[f"PRI_jet_subleading_{q}"] = np.where(f1 | f2, -25.0, c[f"PRI_jet_subleading_{q}"])

    def vec(pt, eta, phi):
        return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)

    def mass(*objs):
        s = [sum(o[k] for o in objs) for k in range(4)]
        return np.sqrt(np.maximum(s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2, 0.0))

    lep = vec(c["PRI_lep_pt"], c["PRI_lep_eta"], c["PRI_lep_phi"])
    had = vec(c["PRI_had_pt"], c["PRI_had_eta"], c["PRI_had_phi"])
    nj = c["PRI_n_jets"]
    two = nj >= 2
    jet1 = vec(np.where(nj >= 1, c["PRI_jet_leading_pt"], 0.0), c["PRI_jet_leading_eta"], c["PRI_jet_leading_phi"])
    jet2 = vec(np.where(two, c["PRI_jet_subleading_pt"], 0.0), c["PRI_jet_subleading_eta"], c["PRI_jet_subleading_phi"])
    met_x, met_y = c["PRI_met"] * np.cos(c["PRI_met_phi"]), c["PRI_met"] * np.sin(c["PRI_met_phi"])
    dphi = np.mod(c["PRI_lep_phi"] - c["PRI_met_phi"] + np.pi, 2 * np.pi) - np.pi
    e1, e2 = c["PRI_jet_leading_eta"], c["PRI_jet_subleading_eta"]
    sign = np.sign(np.sin(c["PRI_had_phi"] - c["PRI_lep_phi"]))
    a = np.sin(c["PRI_met_phi"] - c["PRI_lep_phi"]) * sign
    b = np.sin(c["PRI_had_phi"] - c["PRI_met_phi"]) * sign
    deta2 = np.where(two, (e1 - e2) ** 2, 1.0)
    dphi_lh = np.mod(c["PRI_had_phi"] - c["PRI_lep_phi"] + np.pi, 2 * np.pi) - np.pi
    der = np.stack(
        [
            np.sqrt(np.maximum(2 * c["PRI_lep_pt"] * c["PRI_met"] * (1 - np.cos(dphi)), 0.0)),
            mass(lep, had),
            np.hypot(lep[0] + had[0] + met_x, lep[1] + had[1] + met_y),
            np.where(two, np.abs(e1 - e2), -25.0),
            np.where(two, mass(jet1, jet2), -25.0),
            np.where(two, e1 * e2, -25.0),
            np.hypot(c["PRI_lep_eta"] - c["PRI_had_eta"], dphi_lh),
            np.hypot(lep[0] + had[0] + met_x + jet1[0] + jet2[0], lep[1] + had[1] + met_y + jet1[1] + jet2[1]),
            c["PRI_lep_pt"] + c["PRI_had_pt"] + c["PRI_jet_all_pt"],
            c["PRI_lep_pt"] / c["PRI_had_pt"],
            np.where(a**2 + b**2 > 0, (a + b) / np.sqrt(np.maximum(a**2 + b**2, 1e-30)), -25.0),
            np.where(two, np.exp(-4 / deta2 * (c["PRI_lep_eta"] - (e1 + e2) / 2) ** 2), -25.0),
        ],
        axis=1,
    )
    pri = np.stack([c[name] for name in PRI], axis=1)
    return np.concatenate([pri, der], axis=1)


def numpy_classifier(params: dict, features: np.ndarray) -> np.ndarray:
    """The flax MLP's forward pass in numpy (SiLU hidden layers, sigmoid output)."""
    x = (features - np.asarray(params["mean"], np.float64)) / np.asarray(params["std"], np.float64)
    layers = params["net"]["params"]
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for name in names[:-1]:
        x = x @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(layers[name]["bias"], np.float64)
        x = x / (1 + np.exp(-x))
    x = x @ np.asarray(layers[names[-1]]["kernel"], np.float64) + np.asarray(layers[names[-1]]["bias"], np.float64)
    return 1 / (1 + np.exp(-x[:, 0]))


def numpy_expected(model: dict, mu: float, alpha: np.ndarray) -> np.ndarray:
    """The template model lambda_b(mu, alpha) of templates.py, in numpy."""
    s = min(np.exp(alpha[2]), 6.0)
    x = np.array([alpha[0] - 1, alpha[1] - 1, s * s])
    coef = model["coef"]
    x_powers = np.stack([x**d for d in range(1, coef.shape[-1] + 1)], axis=-1)
    log_r = np.einsum("kd,kpbd->pb", x_powers, coef)
    scale = np.array([mu, alpha[5], alpha[5] * alpha[3], alpha[5] * alpha[4]])
    return np.sum(scale[:, None] * model["nominal"] * np.exp(log_r), axis=0)


def reference_pe(pool, met_noise, params, model, mu_true, nu_true, rng) -> tuple[float, float, float]:
    """One PE the reference way; returns (mu_hat, p16, p84)."""
    from iminuit import Minuit

    from jaxbench.tasks.fair_universe.schema import DIBOSON, SIGNAL, TTBAR
    from jaxbench.tasks.fair_universe.templates import ALPHA_CENTER, ALPHA_SIGMA

    pri, weights, process = (np.asarray(a) for a in pool)
    _, _, _, ttbar_scale, diboson_scale, bkg_scale = (float(v) for v in nu_true)
    rate = (
        weights
        * np.where(process == SIGNAL, mu_true, bkg_scale)
        * np.where(process == TTBAR, ttbar_scale, 1.0)
        * np.where(process == DIBOSON, diboson_scale, 1.0)
    )
    rows = np.repeat(np.arange(pri.shape[0]), rng.poisson(rate))
    features = numpy_systematics_and_features(pri[rows], nu_true, met_noise[rows])
    # Hard bin edges: cheaper than jaxbench's soft edges, so the ratio errs in the reference's favour.
    hist, _ = np.histogram(numpy_classifier(params, features), bins=np.asarray(model["edges"], np.float64))
    center, sigma = ALPHA_CENTER.astype(np.float64), ALPHA_SIGMA.astype(np.float64)

    def nll(mu, *alpha):
        alpha = np.asarray(alpha)
        lam = np.maximum(numpy_expected(model, mu, alpha), 1e-12)
        return float(np.sum(lam - hist * np.log(lam)) + 0.5 * np.sum(((alpha - center) / sigma) ** 2))

    names = ("mu",) + tuple(f"a{i}" for i in range(6))
    m = Minuit(nll, 1.0, *center, name=names)
    m.errordef = Minuit.LIKELIHOOD
    for name, s in zip(names[1:], sigma):
        m.errors[name] = s
    m.migrad()
    m.minos("mu")
    return m.values["mu"], m.values["mu"] + m.merrors["mu"].lower, m.values["mu"] + m.merrors["mu"].upper


def stage_table(pool, met_noise, params, templates, hidden, max_rate, n_pe: int = 8) -> None:
    """Milliseconds per PE of each stage of the jaxbench PE kernel on the same pool (lax.map over PEs).

    The stages marked "blocks" run as in the kernel, block by block of the prepared pool; the
    direct systematics + features and jax.random.poisson are the ways they replaced.
    """
    import jax
    import jax.numpy as jnp

    from jaxbench.kernels.likelihood import make_profile_fit
    from jaxbench.tasks.fair_universe import schema
    from jaxbench.tasks.fair_universe.classifier import classifier_score
    from jaxbench.tasks.fair_universe.estimator import CROSSING_STEPS, NEWTON_STEPS
    from jaxbench.tasks.fair_universe.pseudo_experiments import draw_counts, had_pt_order, prepare_pool
    from jaxbench.tasks.fair_universe.systematics import apply_systematics, shifted_features
    from jaxbench.tasks.fair_universe.templates import (
        ALPHA_CENTER,
        ALPHA_SIGMA,
        TemplateModel,
        event_features,
        expected_counts,
        soft_histogram,
    )

    score = classifier_score
    nu = jnp.asarray(schema.NOMINAL_NUISANCES).at[2].set(1.0)
    keys = jax.random.split(jax.random.key(7), n_pe)
    model = TemplateModel(**templates)
    prepared = jax.jit(prepare_pool)(pool, met_noise, had_pt_order(pool))
    n_blocks, block_size = prepared.weights.shape
    direction = jnp.linspace(-1.0, 1.0, 28)  # every feature column reaches the output

    def scale(k):  # a per-PE factor so nothing is hoisted out of the loop
        return 1.0 + 0.01 * jax.random.uniform(k)

    def by_blocks(fn, *blocked):
        return jax.lax.map(lambda args: fn(*args), blocked)

    def fits(hist):
        return [
            make_profile_fit(
                lambda mu, a: expected_counts(model, mu, a),
                ALPHA_CENTER,
                ALPHA_SIGMA,
                profile=profile,
                newton_steps=NEWTON_STEPS,
                crossing_steps=CROSSING_STEPS,
            )(hist).p16
            for profile in (True, False)
        ]

    # The pool is an argument, as in the PE kernel (closed-over constants compile differently).
    stages = {
        "Poisson counts, jax.random.poisson": lambda a, k: jax.random.poisson(k, a["weights"] * scale(k)),
        "Poisson counts, inverse CDF (jaxbench)": lambda a, k: draw_counts(k, a["prepared"], scale(k), nu, max_rate),
        "systematics + 12 derived features, direct": lambda a, k: (
            event_features(
                apply_systematics(a["pri"], a["weights"], a["process"], nu.at[0].set(scale(k)), a["met_noise"])[0]
            )
            @ direction
        ),
        "the same from pool invariants, blocks (jaxbench)": lambda a, k: by_blocks(
            lambda inv: shifted_features(inv, nu.at[0].set(scale(k)))[0] @ direction, a["prepared"].invariants
        ),
        "classifier, blocks": lambda a, k: by_blocks(lambda x: score(a["params"], x * scale(k)), a["features"]),
        "soft histogram, blocks": lambda a, k: by_blocks(
            lambda w, s: soft_histogram(w, s * scale(k), model.edges), a["prepared"].weights, a["score"]
        ),
        "two fits": lambda a, k: fits(a["hist"] * scale(k)),
    }
    features = jax.jit(event_features)(pool.pri)
    pad = n_blocks * block_size - pool.num_events
    features = jnp.pad(features, ((0, pad), (0, 0))).reshape(n_blocks, block_size, 28)
    arrays = {
        **pool._asdict(),
        "met_noise": met_noise,
        "params": params,
        "prepared": prepared,
        "features": features,
        "score": jax.jit(jax.vmap(score, in_axes=(None, 0)))(params, features),
        "hist": jnp.asarray(model.nominal).sum(axis=0),
    }
    print(f"\n{'stage (jitted, lax.map over PEs)':50s} {'ms / PE':>8s}")
    for name, fn in stages.items():
        run = jax.jit(lambda a, ks, fn=fn: jax.lax.map(lambda k: fn(a, k), ks))
        jax.block_until_ready(run(arrays, keys))
        seconds = []
        for _ in range(3):  # the fastest of three: other processes only ever add time
            t0 = time.perf_counter()
            jax.block_until_ready(run(arrays, keys))
            seconds.append(time.perf_counter() - t0)
        print(f"{name:50s} {min(seconds) / n_pe * 1e3:8.1f}")


def main() -> None:
    # The PE batch is sharded over every visible device. On CPU one XLA device already uses all
    # cores; forcing one device per core (XLA_FLAGS) measured 1.5-3x slower on 2 cores.
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-pes", type=int, default=8)
    parser.add_argument("--jax-pes", type=int, default=256)
    parser.add_argument("--pool", default="30000,60000,30000,15000", help="pool events per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-device", type=int, default=2, help="PEs per device in one jitted call")
    parser.add_argument("--stages", action="store_true", help="also time each stage of the jaxbench PE kernel")
    args = parser.parse_args()

    import tempfile

    import jax

    import jaxbench
    from jaxbench.runner import Runner

    pool_events = tuple(int(v) for v in args.pool.split(","))
    n_per_mu = -(-max(args.jax_pes, args.reference_pes) // 10)
    task = jaxbench.make("fair_universe-v0", "quick", pool_events=pool_events, epochs=3, n_pe_per_mu=n_per_mu)
    config = task.config
    key = jax.random.key(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        # The same data, classifier and templates as a run (estimator quality does not change timings).
        runner = Runner(tmp, progress=False, log=lambda s: None)
        data = task.generate(jax.random.fold_in(key, 0), config)
        params = task.fit(jax.random.fold_in(key, 1), data, config, runner.stages("fit"))
        pool, met_noise, templates = data.pool, data.met_noise, params.templates._asdict()
        conditions = task.conditions(jax.random.fold_in(key, 3), data, config)
        n_bins = config.analysis.n_bins
        # The pool is prepared once (invariants, sorted blocks), as in every run; not timed.
        shared = task.prepare(params, data, config)
        chunk = runner.mesh.size * args.per_device
        n_jax = args.jax_pes // chunk * chunk
        batch = jax.tree.map(lambda v: np.asarray(v)[:n_jax], conditions)
        # The runner's own sweep (sharded over every device, per-PE keys by index), chunk by chunk.
        t0 = time.perf_counter()
        runner.sweep(task.evaluate, shared, jax.tree.map(lambda v: v[:chunk], batch), key, chunk_size=chunk)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner.sweep(task.evaluate, shared, batch, key, chunk_size=chunk)
        jax_s = time.perf_counter() - t0
        params = params.classifier
    conditions = conditions._asdict()

    rng = np.random.default_rng(args.seed)
    np_params = jax.tree.map(np.asarray, params)
    np_model = {k: np.asarray(v, np.float64) for k, v in templates.items()}
    np_pool = (np.asarray(pool.pri), np.asarray(pool.weights), np.asarray(pool.process))
    t0 = time.perf_counter()
    for i in range(args.reference_pes):
        reference_pe(
            np_pool,
            np.asarray(met_noise, np.float64),
            np_params,
            np_model,
            float(conditions["mu_true"][i]),
            conditions["nu_true"][i],
            rng,
        )
    ref_s = time.perf_counter() - t0

    ref_rate, jax_rate = args.reference_pes / ref_s, n_jax / jax_s
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, jax devices: {len(jax.devices())} x "
        f"{jax.devices()[0].platform}; pool {pool.num_events} events; {n_bins} bins; "
        f"classifier {config.classifier.hidden}"
    )
    print(f"{'way':52s} {'PEs':>6s} {'seconds':>9s} {'PEs/s':>9s} {'ratio':>7s}")
    for way, n, seconds, rate in (
        ("reference: numpy rows + iminuit MIGRAD/MINOS, 1 PE at a time", args.reference_pes, ref_s, ref_rate),
        ("jaxbench: the task's evaluate through the runner's sweep", n_jax, jax_s, jax_rate),
    ):
        print(f"{way:52s} {n:6d} {seconds:9.2f} {rate:9.2f} {rate / ref_rate:7.1f}")
    if args.stages:
        stage_table(pool, met_noise, params, templates, config.classifier.hidden, shared.max_rate)
    print(
        f"(jaxbench compile time, once: {compile_s:.1f} s, not included; the reference fits the profiled "
        "likelihood only, jaxbench fits both the profiled and the statistical-only one)"
    )


if __name__ == "__main__":
    main()
