"""fair_universe-v0 study adapters: the beam-axis rotation and the nuisance grid."""

import jax
import numpy as np
import pytest

from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.derived import derived_features
from jaxbench.tasks.fair_universe.generator import generate_pool
from jaxbench.tasks.fair_universe.systematics import PHI_COLUMNS, nuisance_at, rotate_azimuth


@pytest.fixture(scope="module")
def pri():
    return generate_pool(jax.random.key(4), (500, 500, 500, 500)).pri


@pytest.mark.parametrize("angle", [0.3, 2.0, -1.1])
def test_derived_features_are_invariant_under_a_beam_axis_rotation(pri, angle):
    rotated = rotate_azimuth(pri, angle)
    np.testing.assert_allclose(
        np.asarray(derived_features(rotated)), np.asarray(derived_features(pri)), rtol=2e-4, atol=2e-3
    )
    cols = [schema.PRI[c] for c in PHI_COLUMNS]
    moved = np.asarray(rotated)[:, cols]
    present = np.asarray(pri)[:, cols] != schema.MISSING
    assert np.all(moved[~present] == schema.MISSING)  # missing jets stay missing
    assert np.all((moved[present] >= -np.pi) & (moved[present] < np.pi))
    others = [i for i in range(pri.shape[1]) if i not in cols]
    np.testing.assert_array_equal(np.asarray(rotated)[:, others], np.asarray(pri)[:, others])


def test_a_full_turn_is_the_identity(pri):
    np.testing.assert_allclose(np.asarray(rotate_azimuth(pri, 2 * np.pi)), np.asarray(pri), atol=2e-5)


def test_nuisance_grid_values():
    assert nuisance_at("tes", 0.0) == pytest.approx(1.0)
    assert nuisance_at("tes", 3.0) == pytest.approx(1.03)
    assert nuisance_at("soft_met", 1.0) == pytest.approx(np.e)  # lognormal: exp(loc + k scale)
    assert nuisance_at("diboson_scale", -5.0) == 0.0  # normalisation scales stay >= 0
