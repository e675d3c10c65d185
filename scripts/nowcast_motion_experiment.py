"""Does the nowcast evolution network learn the true motion? Trains the evolution phase alone (QUICK preset plus
JSON overrides) and prints, on 32 held-out generated events, the motion end-point error against the generator's
true motion (px/step, rainy pixels) and the pooled CSI at 16 mm/h of the evolved frames at 10, 30 and 60 minutes.

Usage: python scripts/nowcast_motion_experiment.py '{"training.motion_weight": 1.0}'
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    """Train, evaluate and print one line."""
    from jaxbench.config import override
    from jaxbench.kernels import verification
    from jaxbench.tasks.nowcast import baselines, config, generator, model, training

    changes = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    cfg = override(config.QUICK, {"training.generative_steps": 0, **changes})
    d = cfg.data
    cache = generator.default_cache_dir()
    train = generator.cached_events(cache, jax.random.key(11), d.n_train, d, cfg.simulator)
    test = generator.cached_events(cache, jax.random.key(12), 32, d, cfg.simulator)
    start = time.time()
    params, history = training.train(jax.random.key(0), np.asarray(train.frames), cfg.model, d, cfg.training)
    fit_s = time.time() - start
    inputs, targets = jnp.asarray(test.frames[:, : d.n_inputs]), np.asarray(test.frames[:, d.n_inputs :])
    evolution = model.evolve(params, cfg.model, d, inputs)
    truth = np.asarray(test.motion)[:, d.n_inputs - 1 : d.n_inputs - 1 + d.n_targets]
    rainy = (targets > 0.1) | (np.asarray(test.frames)[:, d.n_inputs - 1 : -1] > 0.1)
    epe = np.nanmean(np.asarray(baselines.motion_endpoint_error(evolution.motion, truth, rainy)), axis=0)
    csi = np.asarray(verification.pooled_csi(*verification.contingency_counts(evolution.frames, targets, 16.0)))
    speed = float(np.hypot(*np.moveaxis(np.asarray(evolution.motion), 2, 0)).mean())
    loss = history.evolution_loss
    print(
        json.dumps(changes),
        f"fit {fit_s:.0f} s, loss {np.nanmean(loss[:20]):.3f} -> {np.nanmean(loss[-20:]):.3f},",
        f"EPE@10,30,60 min {epe[[0, 2, 5]].round(2)}, CSI16 {csi[[0, 2, 5]].round(3)},",
        f"model speed {speed:.2f} px/step, true {float(np.hypot(truth[:, :, 0], truth[:, :, 1]).mean()):.2f}",
    )


if __name__ == "__main__":
    main()
