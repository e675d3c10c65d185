"""Jet-tagging benchmark: Pythia 8 + FastJet generation, feature building, N-subjettiness, ParT training and inference.

Each line prints jaxbench beside the reference way of doing the same work in one run (a ratio > 1: jaxbench faster):

  generation:    ``generator.generate_sample`` accepted jets/s with 1 worker and with ``--workers`` processes
                 (both classes; Pythia 8 at 14 TeV, cell detector, anti-kT 0.8, 550-650 GeV, top matching);
  features:      the jitted ParT inputs (7 particle + 4 pair features) vs the float64 numpy/awkward recipe of the
                 published conversion (tests/reference/jets_reference.py), jets/s, on the generated jets;
  substructure:  jet mass + tau1..3 with exclusive-kT axes in JAX (bucketed) vs FastJet's exclusive kT from Python
                 (one ClusterSequence per jet and N), jets/s;
  part:          training steps/s (batch ``--batch``, value_and_grad + RAdam, warm) and inference jets/s of the
                 tiny, quick and published ParT sizes; the first call compiles and is timed apart.

Usage: python scripts/bench_jets.py [--jets 200] [--workers 2] [--batch 64] [--steps 20] [--published-steps 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """(best seconds of ``repeat`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_generation(n_per_class: int, workers: int):
    import jax

    from jaxbench.tasks.jets import generator

    key = jax.random.key(1)
    one, jets = timed(
        lambda: generator.generate_sample(key, n_per_class, workers=1, chunk_size=max(1, n_per_class // 2))
    )
    many, _ = timed(
        lambda: generator.generate_sample(key, n_per_class, workers=workers, chunk_size=max(1, n_per_class // 2))
    )
    total = 2 * n_per_class
    print(
        f"generation   {total} jets: 1 worker {total / one:7.1f} jets/s; {workers} workers {total / many:7.1f} jets/s "
        f"(x{one / many:.2f})"
    )
    return jets


def bench_features(p4: np.ndarray, max_particles: int):
    import jax

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from jets_reference import pair_features_reference, particle_features_reference

    from jaxbench.tasks.jets import features

    p4 = p4[:, :max_particles]
    fn = jax.jit(lambda p: (features.particle_features(p, max_particles), features.pair_features(p)))
    compile_s, _ = timed(lambda: jax.block_until_ready(fn(p4)))
    warm, _ = timed(lambda: jax.block_until_ready(fn(p4)), 3)
    ref, _ = timed(lambda: (particle_features_reference(p4, max_particles), pair_features_reference(p4)))
    n = len(p4)
    print(
        f"features     {n} jets x {max_particles} slots: jitted {n / warm:9.0f} jets/s (compile {compile_s:.1f} s); "
        f"numpy/awkward float64 {n / ref:9.0f} jets/s; ratio {ref / warm:.1f}"
    )


def bench_substructure(p4: np.ndarray, n_ref: int):
    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from jets_reference import nsubjettiness_reference

    from jaxbench.tasks.jets import baseline

    first, _ = timed(lambda: baseline.substructure_bucketed(p4))
    warm, _ = timed(lambda: baseline.substructure_bucketed(p4), 2)
    subset = p4[:n_ref]
    ref, _ = timed(lambda: [[nsubjettiness_reference(jet, n) for n in (1, 2, 3)] for jet in subset])
    n = len(p4)
    print(
        f"substructure {n} jets: JAX exclusive-kT {n / warm:8.0f} jets/s (first call {first:.1f} s); "
        f"FastJet from Python {n_ref / ref:8.0f} jets/s; ratio {(ref / n_ref) / (warm / n):.1f}"
    )


def bench_part(sizes: list[str], batch: int, steps: int, max_particles: int, published_steps: int):
    import jax
    import jax.numpy as jnp

    from jaxbench.tasks.jets import part, training
    from jaxbench.tasks.jets.config import TrainConfig

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from jets_reference import random_jets

    p4 = random_jets(np.random.default_rng(0), 4 * batch, max_particles)
    labels = np.arange(len(p4)) % 2
    for name in sizes:
        config = part.variant_config(part.CONFIGS[name], "physics")
        particles = config.max_particles if name == "published" else max_particles
        config = part.PartConfig(**{**config.__dict__, "max_particles": particles})
        jets = np.zeros((len(p4), particles, 4), np.float32)
        jets[:, : min(particles, p4.shape[1])] = p4[:, :particles]
        n_steps = published_steps if name == "published" else steps
        settings = TrainConfig(steps=n_steps, batch_size=batch, checkpoint_every=n_steps)
        keys = jax.random.split(jax.random.key(0), 1)
        run = lambda: jax.block_until_ready(  # noqa: E731
            training.train_many(keys, jets, labels, [np.arange(len(jets))], config, "physics", settings)[0]
        )
        compile_s, weights = timed(run)
        warm, _ = timed(run)
        one = training.unstack(weights, 0)
        predict = jax.jit(lambda w, p: training.top_probability(w, config, "physics", p))
        first, _ = timed(lambda: jax.block_until_ready(predict(one, jnp.asarray(jets))))
        infer, _ = timed(lambda: jax.block_until_ready(predict(one, jnp.asarray(jets))), 3)
        count = part.num_parameters(one)
        print(
            f"part {name:9s} {count:>9,d} weights, {particles} particles: train {n_steps / warm:6.2f} steps/s at batch "
            f"{batch} (first call {compile_s:.1f} s), inference {len(jets) / infer:8.0f} jets/s (first {first:.1f} s)"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jets", type=int, default=200, help="jets per class to generate")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sizes", default="tiny,quick,published")
    parser.add_argument("--published-steps", type=int, default=2, help="steps timed for the published size")
    parser.add_argument("--particles", type=int, default=48, help="slots for features and the tiny/quick ParT")
    args = parser.parse_args(argv)
    import jax

    print(f"$ {' '.join(shlex.quote(a) for a in ['python', 'scripts/bench_jets.py', *(argv or sys.argv[1:])])}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.devices()[0].platform} x{jax.device_count()}, load {os.getloadavg()[0]:.2f}"
    )
    jets = bench_generation(args.jets, args.workers)
    bench_features(jets.p4, args.particles)
    bench_substructure(jets.p4[:, :128], min(100, jets.num_jets))
    bench_part(args.sizes.split(","), args.batch, args.steps, args.particles, args.published_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
