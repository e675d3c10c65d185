"""A tiny fair_universe-v0 estimator (pools, classifier, templates) shared by the task tests."""

import jax
import pytest

TINY = {
    "pool_events": (20_000, 200_000, 40_000, 10_000),
    "train_events": (6_000, 6_000, 4_000, 2_000),
    "hidden": (16, 16),
    "epochs": 4,
    "n_bins": 10,
    "n_bootstrap": 50,
}


@pytest.fixture(scope="session")
def tiny_estimator(tmp_path_factory):
    """(task, data, params) of a tiny configuration, built once per test session."""
    import jaxbench
    from jaxbench.runner import Runner

    task = jaxbench.make("fair_universe-v0", "quick", **TINY)
    runner = Runner(tmp_path_factory.mktemp("tiny"), progress=False, log=lambda s: None)
    data = task.generate(jax.random.key(0), task.config)
    return task, data, task.fit(jax.random.key(1), data, task.config, runner.stages("fit"))
