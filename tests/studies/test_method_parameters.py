"""The studies on the method's own parameters (the paper's sections 4–6), and the mutations they catch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.studies import analyses


def test_the_rotation_scan_of_36_steps_of_5_degrees():
    """The method's scan: 36 rotated test sets, 5° apart, covering 180°; a response of period 90°."""
    angles = np.deg2rad(np.arange(36) * 5.0)
    result = analyses.rotation_scan(lambda a: {"auc": 0.9 + 0.02 * np.cos(4 * a)}, angles)
    assert len(result.select("auc")) == 36 and result.column("x")[-1] == pytest.approx(np.deg2rad(175.0))
    summary = result.summary["metrics"]["auc"]
    assert summary["delta"] == pytest.approx(0.04, abs=1e-12)
    assert summary["argmin"] == pytest.approx(np.deg2rad(45.0)) and summary["argmax"] == 0.0


def test_the_5_by_5_window_grid_keeps_the_15_windows_before_the_test_window():
    """Starts 0/15/30/45/60%, widths 30/45/60/75/90%: a window must end by 90% (the test is the last 10%)."""
    starts, widths = (0.0, 0.15, 0.3, 0.45, 0.6), (0.3, 0.45, 0.6, 0.75, 0.9)
    windows, test = analyses.time_windows(1000, starts, widths, test_fraction=0.1)
    kept = sorted((s, w) for s, w, _ in windows)
    assert kept == sorted((s, w) for s in starts for w in widths if s + w <= 0.9 + 1e-9) and len(kept) == 15
    assert test[0] == 900 and len(test) == 100
    for s, w, positions in windows:
        assert positions[0] == round(1000 * s) and positions[-1] == round(1000 * (s + w)) - 1 < 900


def test_the_stability_outlier_rule_is_three_iqr_beyond_the_upper_quartile():
    """Spreads of 64 items: one at q75 + 2 IQR, one at q75 + 4 IQR; only the second is an outlier."""
    base = np.linspace(1.0, 2.0, 62)  # q25 = 1.25, q75 = 1.75, IQR = 0.5 (before the two extra items)
    spread = np.concatenate([base, [1.75 + 2 * 0.5, 1.75 + 4 * 0.5]])
    noise = jax.random.normal(jax.random.key(0), (16,))  # standardised draws: the per-item std is `spread`
    noise = (noise - noise.mean()) / noise.std(ddof=1)

    def predict(key):
        k = jax.random.randint(key, (), 0, 16)
        return {"m": jnp.asarray(spread, jnp.float32) * noise[k]}

    result = analyses.prediction_stability(predict, jax.random.key(3), 64)
    measured = np.asarray(result.arrays["m.spread"])
    q25, q75 = np.percentile(measured, [25, 75])
    expected = np.flatnonzero(measured > q75 + 3 * (q75 - q25))
    assert list(result.summary["outliers"]["m"]) == list(expected) and 63 in expected and 62 not in expected


def test_the_equivariance_test_catches_a_model_that_breaks_translation_only():
    from jaxbench.tasks.mlff import equivariance

    def pairs(p):
        d = p[:, :, None, :] - p[:, None, :, :]
        r = jnp.sqrt(jnp.sum(d**2, axis=-1) + jnp.eye(p.shape[1])[None])
        return 0.5 * jnp.sum((1 - jnp.exp(-(r - 1.2))) ** 2 * (1 - jnp.eye(p.shape[1]))[None], axis=(1, 2))

    def anchored(p):  # rotation and permutation invariant about the origin, not translation invariant
        return pairs(p) + 0.2 * jnp.sum(jnp.mean(p, axis=1) ** 2, axis=-1)

    def energy_forces(p):
        return anchored(p), -jax.grad(lambda q: jnp.sum(anchored(q)))(p)

    positions = jax.random.normal(jax.random.key(1), (3, 6, 3)) * 1.5
    species = np.array([6, 6, 1, 1, 1, 8])
    result = equivariance.equivariance_test(energy_forces, positions, species, jax.random.key(2), n_trials=4)
    errors = result.summary["max_errors"]
    assert errors["translation"]["energy_rel"] > 1e-3
    assert errors["rotation"]["energy_rel"] < 1e-5 and errors["permutation"]["energy_rel"] < 1e-5
