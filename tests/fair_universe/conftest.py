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
    """(task, data, estimator) of a tiny configuration, built once per test session."""
    import jaxbench
    from jaxbench.runner import Run
    from jaxbench.tasks.fair_universe import task as fu

    task = jaxbench.make("fair_universe-v0", quick=True, **TINY)
    run = Run(tmp_path_factory.mktemp("tiny"), task.id, task.config, seed=0, progress=False, log=lambda s: None)
    data = run.stage("data", lambda: fu.generate_data(jax.random.fold_in(run.key, 0), task.config))
    return task, data, fu.prepare_estimator(run, data)
