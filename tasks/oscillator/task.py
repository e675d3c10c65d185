"""``oscillator-v0``: a damped oscillator's omega0 and zeta from noisy x(t), by least squares."""

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxbench import records
from jaxbench.errors import DataFormatError
from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.studies import generic
from jaxbench.task import RunView, Stage, Task

from .config import CRITERIA, OscillatorConfig, datacard

OMEGA0_TOLERANCE = 0.01  # a relative omega0 error up to this counts as recovered (part of the metric, not a knob)


class Data(NamedTuple):
    """Oscillators: times t (N, T) in s, noiseless x (N, T), omega0 (N,) in rad/s, damping ratio zeta (N,)."""

    t: jax.Array
    x: jax.Array
    omega0: jax.Array
    zeta: jax.Array


def trajectory(theta: jax.Array, t: jax.Array) -> jax.Array:
    """x(t) (T,) of theta = (A, zeta, omega0 rad/s, phi rad) at times t (T,) s."""
    a, zeta, omega0, phi = theta
    return a * jnp.exp(-zeta * omega0 * t) * jnp.cos(omega0 * jnp.sqrt(1 - zeta**2) * t + phi)


def generate(key: jax.Array, config: OscillatorConfig) -> Data:
    """Oscillators uniform in the config's ranges, oscillator i from fold_in(key, i); noise comes in evaluate."""
    t = jnp.tile(jnp.linspace(0.0, config.duration_s, config.n_times), (config.n_train + config.n_test, 1))
    low, high = jnp.array([config.amplitude, config.zeta, config.omega0_rad_s, (-jnp.pi, jnp.pi)]).T
    draw = lambda i: jax.random.uniform(jax.random.fold_in(key, i), (4,), minval=low, maxval=high)
    theta = jax.vmap(draw)(jnp.arange(len(t)))  # (N, 4): A, zeta, omega0, phi
    return Data(t, jax.vmap(trajectory)(theta, t), theta[:, 2], theta[:, 1])


def save(path: Path, data: Data, config: OscillatorConfig) -> Path:
    """The published format (see ``load``) at ``path`` with suffix .npz; returns that path."""
    np.savez(path := Path(path).with_suffix(".npz"), **data._asdict())
    return path


def load(path: Path, key: jax.Array, config: OscillatorConfig) -> Data:
    """An .npz of t (N, T) in s, x (N, T), omega0 (N,) in rad/s and zeta (N,) as float32 Data."""
    arrays = {name: array.astype(np.float32) for name, array in records.read_npz(path).items()}
    for name, ndim in {"x": 2, "t": 2, "omega0": 1, "zeta": 1}.items():  # t and x (N, T), omega0 and zeta (N,)
        shape = arrays[name].shape if name in arrays else ()
        if len(shape) != ndim or shape != arrays["x"].shape[:ndim] or shape[0] <= config.n_train:
            raise DataFormatError(
                f"{path}: key '{name}' is missing or misshapen (found: {', '.join(arrays)}); an "
                "oscillator .npz holds t (N, T), x (N, T), omega0 (N,), zeta (N,), N > n_train."
            )
    return Data(*(arrays[name] for name in Data._fields))


def fit(key: jax.Array, data: Data, config: OscillatorConfig, stage: Stage) -> dict[str, jax.Array]:
    """The training rows' prior: trial frequencies over their omega0 range, widened (rad/s), and median zeta."""
    w, z = jnp.asarray(data.omega0[: config.n_train]), jnp.asarray(data.zeta[: config.n_train])
    return stage("prior", lambda: {"omegas": jnp.linspace(0.8 * w.min(), 1.25 * w.max(), 512), "zeta": jnp.median(z)})


def fit_trajectory(t: jax.Array, y: jax.Array, shared: dict[str, jax.Array]) -> jax.Array:
    """Least-squares (A, zeta, omega0, phi) of one y (T,) at t (T,): a DFT-peak start, then Levenberg-Marquardt."""
    grid, zeta = shared["omegas"], shared["zeta"]
    dft = jnp.exp(-1j * jnp.outer(grid, t)) @ y  # at omega_d: (A / 2) e^{i phi} * sum of the envelope
    k = jnp.argmax(jnp.abs(dft))
    start = jnp.stack([2 * jnp.abs(dft[k]) / jnp.exp(-zeta * grid[k] * t).sum(), zeta, grid[k], jnp.angle(dft[k])])

    def step(carry, _):  # LM step, kept unless the cost rises beyond round-off: ends at the float32 fixed point
        theta, damping = carry
        jac, residual = jax.jacfwd(trajectory)(theta, t), trajectory(theta, t) - y
        trial = theta - jnp.linalg.solve(jac.T @ jac + damping * jnp.diag(jnp.sum(jac**2, 0)), jac.T @ residual)
        better = jnp.sum((trajectory(trial, t) - y) ** 2) <= jnp.sum(residual**2) * (1 + 1e-5)  # NaN is never kept
        return (jnp.where(better, trial, theta), jnp.where(better, damping / 3, damping * 4)), None

    return jax.lax.scan(step, (start, jnp.float32(1e-3)), None, 40)[0][0]


def evaluate(shared: dict[str, jax.Array], items: Data, keys: jax.Array) -> dict[str, jax.Array]:
    """Fits of a batch (B,): fresh measurement noise from each item's key, then ``fit_trajectory``."""
    noisy_fit = lambda t, x, key: fit_trajectory(t, x + shared["noise_sigma"] * jax.random.normal(key, x.shape), shared)
    return dict(zip(("amplitude", "zeta", "omega0", "phase"), jax.vmap(noisy_fit)(items.t, items.x, keys).T))


def per_sample_metrics(outputs: dict, items: Data) -> dict[str, np.ndarray]:
    """Per test oscillator: the relative omega0 error and the absolute zeta error."""
    return {
        "omega0_rel_error": abs(outputs["omega0"] / items.omega0 - 1),
        "zeta_abs_error": abs(outputs["zeta"] - items.zeta),
    }


def score(per_sample: dict, outputs: dict, items: Data, key: jax.Array) -> dict[str, float]:
    """Medians and means of the errors, and the fraction with omega0 within ``OMEGA0_TOLERANCE``."""
    stats = {f"{name}_{fn.__name__}": float(fn(e)) for name, e in per_sample.items() for fn in (np.median, np.mean)}
    return {**stats, "omega0_recovered_fraction": float(np.mean(per_sample["omega0_rel_error"] <= OMEGA0_TOLERANCE))}


def report(view: RunView) -> list[ReportSection]:
    """One section: fitted vs true omega0 of every test oscillator, coloured by zeta."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    fig.colorbar(ax.scatter(view.items.omega0, view.outputs["omega0"], c=view.items.zeta, s=8), label="ζ")
    ax.axline((1.0, 1.0), slope=1.0, color="k", lw=0.8)
    ax.set(xlabel="true ω0 (rad/s)", ylabel="fitted ω0 (rad/s)")
    caption = "Fitted vs true ω0 of every test oscillator, coloured by the damping ratio ζ; line: fit = truth."
    return [ReportSection("Natural frequency", figures=(Figure("oscillator_omega0", caption, figure_png(fig)),))]


def make_task(task_id: str, config: OscillatorConfig) -> Task:
    """The registry's factory: the Task's fields in the order the runner calls them."""
    snr = lambda x: np.sqrt(np.mean(np.square(x), axis=1)) / max(config.noise_sigma, 1e-9)  # rms signal / sigma
    # evaluate draws fresh noise from its keys, so a stability spread is a fit's statistical error (falls with SNR)
    studies = dict(breakdown=generic.breakdown(), correlation=generic.correlation(), stability=generic.stability())
    return Task(
        task_id,
        config,
        datacard(config),
        CRITERIA,
        generate,
        load,
        save,
        fit,
        conditions=lambda key, data, config: jax.tree.map(lambda a: a[config.n_train :], data),  # test rows
        prepare=lambda params, data, config: {**params, "noise_sigma": jnp.float32(config.noise_sigma)},
        evaluate=evaluate,
        per_sample_metrics=per_sample_metrics,
        score=score,
        report=report,
        studies=studies,
        features=lambda items, data: {"omega0": items.omega0, "zeta": items.zeta, "snr": snr(items.x)},
        summary=lambda metrics: Table(f"{task_id}: scores", ("metric", "value"), tuple(metrics.items())),
    )
