"""mlff error tracing and the loss variant, without a run: the trace summary on series whose answer is known,
the per-atom energy MAE, the figures' axes and legends, and a loss without its force term."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxbench import registry
from jaxbench.studies import StudyResult, make_rows
from jaxbench.tasks.mlff import metrics, nequip, plots, training
from jaxbench.tasks.mlff.config import TINY
from jaxbench.tasks.mlff.geometries import starting_geometry
from jaxbench.tasks.mlff.studies import trace_summary

UNIT = re.compile(r"\((meV|MD step|count|dimensionless|meV/Å|meV/atom|meV per molecule)\)$")


def test_trace_summary_finds_the_start_spike_a_biased_stretch_and_the_energy_force_link():
    time_index = 10 * np.arange(20)
    error = np.zeros(20)
    error[0] = -200.0  # the spike at the start of the test window (the method's figure 5)
    error[8:14] = -60.0  # a stretch of consistently negative errors
    force = 100.0 + np.abs(error)  # the force error grows with the energy error
    summary = trace_summary(time_index, error, force, atoms=9)
    assert summary["first_frame_error_mev"] == summary["largest_error_mev"] == -200.0
    assert summary["largest_error_time_index"] == 0
    assert summary["energy_bias_mev"] == pytest.approx(error.mean())
    assert summary["energy_mae_mev_per_atom"] == pytest.approx(np.abs(error).mean() / 9)
    assert summary["force_mae_mev_per_a"] == pytest.approx(force.mean())
    assert summary["spearman_abs_energy_vs_force_mae"] == pytest.approx(1.0, abs=1e-6)
    stretch = trace_summary(time_index, np.where(error == -60.0, -60.0, 0.0), force, atoms=9)
    assert stretch["lag1_autocorrelation"] == pytest.approx(11196 / 15120)  # errors that persist in time
    alternating = trace_summary(time_index, np.where(np.arange(20) % 2, 5.0, -5.0), force, atoms=9)
    assert alternating["energy_bias_mev"] == 0.0 and alternating["lag1_autocorrelation"] == pytest.approx(-0.95)


def test_per_atom_energy_mae_divides_the_molecule_mae_by_its_atoms():
    per_frame = {
        "energy_abs_error_mev": np.array([9.0, 18.0, 27.0]),
        "force_mae_mev_per_a": np.ones(3),
        "force_mse_mev2_per_a2": np.ones(3),
    }
    scores = metrics.error_metrics(per_frame, atoms=9)
    assert scores["energy_mae_mev"] == 18.0 and scores["energy_mae_mev_per_atom"] == 2.0


def _traces(rng: np.random.Generator, n: int = 12) -> tuple[dict, dict]:
    models = {
        "window_narrow": "window [0, 0.3) (10 frames)",
        "window_wide": "window [0, 0.6) (10 frames)",
        "size_small": "n=10 (whole pool, seed 0)",
        "size_large": "n=20 (whole pool, seed 0)",
    }
    arrays = {"time_index": 2 * np.arange(n)}
    for name in models:
        arrays[f"{name}.energy_error_mev"] = 50 * rng.standard_normal(n)
        arrays[f"{name}.force_mae_mev_per_a"] = 300 + 20 * rng.standard_normal(n)
    return arrays, models


def _sizes_result(rng: np.random.Generator, groups: tuple[str, ...]) -> StudyResult:
    rows = []
    for group in groups:
        for n in (10, 20):
            for seed in (0, 1):
                values = {"force_mae_mev_per_a": 300 + rng.random(), "energy_mae_mev_per_atom": 5 + rng.random()}
                values |= {"energy_mae_mev": 45 + rng.random(), "force_mae_H": 200 + rng.random()}
                rows += make_rows(group, f"n={n}", n, seed, values, support=n)
    return StudyResult("variants", tuple(rows))


def _difference_summary() -> dict:
    entry = {"n=10": {"mean": 400.0, "error": 5.0, "seeds": 2}, "n=20": {"mean": 350.0, "error": 8.0, "seeds": 2}}
    metrics_ = ("force_mae_mev_per_a", "energy_mae_mev_per_atom", "energy_mae_mev")
    return {"reference": "energy_and_forces", "difference_vs_reference": {m: {"energy_only": entry} for m in metrics_}}


@pytest.mark.parametrize("name", ["error_tracing", "size_curves", "variant_sizes", "variant_differences"])
def test_every_study_axis_has_its_quantity_and_unit_and_no_legend_covers_data(name):
    rng = np.random.default_rng(0)
    figure = {
        "error_tracing": lambda: plots.error_tracing(*_traces(rng)),
        "size_curves": lambda: plots.size_curves(_sizes_result(rng, ("",))),
        "variant_sizes": lambda: plots.size_curves(_sizes_result(rng, ("energy_and_forces", "energy_only"))),
        "variant_differences": lambda: plots.variant_differences(_difference_summary()),
    }[name]()
    figure.canvas.draw()
    assert len(figure.axes) == 3
    for ax in figure.axes:
        assert UNIT.search(ax.get_ylabel()) and UNIT.search(ax.get_xlabel()), (name, ax.get_xlabel(), ax.get_ylabel())
        legend = ax.get_legend()
        if legend is not None:
            assert not legend.get_window_extent().overlaps(ax.get_window_extent()), name
    if name == "error_tracing":  # one line per model of the pair, one scatter per model
        assert [len(ax.get_lines()) for ax in figure.axes[:2]] == [3, 3]  # two models + the zero line
        assert len(figure.axes[2].collections) == 4
    plt.close(figure)


def test_an_energy_only_loss_is_allowed_and_ignores_the_force_labels():
    task = registry.make("mlff_aspirin-v0", "tiny", **{"training.force_weight": 0.0})
    assert task.config.training.force_weight == 0.0
    species, start = starting_geometry("ethanol")
    rng = np.random.default_rng(0)
    positions = (start[None] + 0.02 * rng.standard_normal((4, *start.shape))).astype(np.float32)
    params = nequip.init(jax.random.key(0), TINY.model, species, positions)
    energy, forces = jnp.asarray(rng.standard_normal(4)), jnp.asarray(rng.standard_normal(positions.shape))
    settings = task.config.training

    @jax.jit
    def loss_and_grads(weights, forces):
        def loss(weights):
            return training.loss_terms(params.replace(weights=weights), species, positions, energy, forces, settings)

        return jax.value_and_grad(loss, has_aux=True)(weights)

    (value, (energy_mse, force_mse)), grads = loss_and_grads(params.weights, forces)
    assert float(value) == pytest.approx(float(settings.energy_weight * energy_mse)) and float(force_mse) > 0
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # The force labels do not reach the gradient: other forces, the same step.
    _, other = loss_and_grads(params.weights, 3.0 * forces + 1.0)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), grads, other)
