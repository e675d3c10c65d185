"""Every registered task passes the public conformance checks on its tiny preset; a broken one fails."""

import jax
import pytest

import jaxbench
from jaxbench.testing import ConformanceError, check_task


@pytest.mark.parametrize("task_id", jaxbench.registered())
def test_registered_task_conforms(task_id, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXBENCH_CACHE", str(tmp_path / "cache"))
    view = check_task(task_id, "tiny")
    assert view.metrics and view.per_sample


def test_an_evaluate_whose_items_see_their_batch_is_caught(monkeypatch):
    task = jaxbench.make("oscillator-v0", "tiny")

    def leaky(shared, items, keys):  # each item's output moves with its batch's mean: chunking shows
        return jax.tree.map(lambda x: x + x.mean() if x.dtype.kind == "f" else x, task.evaluate(shared, items, keys))

    monkeypatch.setattr(jaxbench.registry, "build", lambda task_id, config: task.replace(evaluate=leaky))
    with pytest.raises(ConformanceError, match="one chunk vs two chunks"):
        check_task("oscillator-v0", "tiny")


def test_a_load_that_loses_data_is_caught(monkeypatch):
    task = jaxbench.make("oscillator-v0", "tiny")

    def lossy(path, key, config):
        return jax.tree.map(lambda x: x * 1.001 if x.dtype.kind == "f" else x, task.load(path, key, config))

    monkeypatch.setattr(jaxbench.registry, "build", lambda task_id, config: task.replace(load=lossy))
    with pytest.raises(ConformanceError, match=r"load\(save\(data\)\)"):
        check_task("oscillator-v0", "tiny")
