"""MLFF benchmark: MD generation frames/second, NequIP training steps/second, vmapped vs one by one.

Data: an aspirin-sized synthetic molecule (C9H8O4, 21 atoms, random compact geometry with
1.1 Å minimum separation), frames displaced by 0.1 Å, labelled by a Morse pair potential in
float64. The model cost does not depend on the labels, and the all-pairs edge budget makes it
independent of the geometry too (420 ordered pairs for 21 atoms).

  training: ``training.train`` for each config at batch 5; the first call compiles, the timed
            second call reuses the program (wall time of the whole call / steps);
  md:       the embedded generator (GFN2-xTB via tblite, ASE Langevin, 0.5 fs, save every step)
            on the shipped aspirin geometry: one process, then ``--md-processes`` independent
            trajectories in parallel processes (frames/s of all together); no cache;
  vmap:     ``training.train_many`` with M models (one vmapped program) vs M ``training.train``
            calls in a row, both warm; ratio = sequential / vmapped (> 1: vmap is faster).

Usage: python scripts/bench_mlff.py [--md-frames 300] [--configs tiny,medium] [--steps 100] [--models 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from importlib.metadata import version

import numpy as np

ASPIRIN_FORMULA = {6: 9, 1: 8, 8: 4}  # C9H8O4


def synthetic_molecule(seed: int, formula: dict[int, int], num_frames: int, sigma: float = 0.1):
    """Frames of a random compact molecule with Morse labels (eV, eV/Å), float64 numpy.

    Returns (species (N,), positions (F, N, 3) Å, energy (F,) eV, forces (F, N, 3) eV/Å).
    """
    rng = np.random.default_rng(seed)
    species = np.concatenate([np.full(n, z, dtype=np.int32) for z, n in formula.items()])
    n = species.shape[0]
    reference = np.zeros((0, 3))
    radius = 1.2 * n ** (1 / 3)
    while reference.shape[0] < n:  # rejection sampling in a ball, 1.1 Å apart
        trial = rng.uniform(-radius, radius, size=3)
        if np.linalg.norm(trial) < radius and np.all(np.linalg.norm(reference - trial[None], axis=-1) > 1.1):
            reference = np.concatenate([reference, trial[None]])
    positions = reference[None] + sigma * rng.normal(size=(num_frames, n, 3))
    eye = np.eye(n)
    r0 = np.linalg.norm(reference[:, None] - reference[None] + eye[:, :, None], axis=-1)
    depth = np.where(r0 < 1.8, 1.0, 0.05) * (1 - eye)  # "bonded" pairs deep, the rest shallow
    d = positions[:, :, None, :] - positions[:, None, :, :]
    r = np.linalg.norm(d + eye[None, :, :, None], axis=-1)
    decay = np.exp(-1.8 * (r - r0[None]))
    energy = 0.5 * np.sum(depth[None] * (1 - decay) ** 2, axis=(1, 2)) - 100.0 * n
    de_dr = 2 * depth[None] * 1.8 * decay * (1 - decay)
    forces = -np.sum(de_dr[..., None] * d / r[..., None], axis=2)
    return species, positions, energy, forces


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def md_table(args) -> None:
    """Frames/s of the GFN2-xTB trajectory generator, one process and several in parallel."""
    import jax

    from jaxbench.tasks.mlff import md

    n = args.md_frames
    options = dict(equilibration_steps=0, save_every=1)
    md.generate_trajectory(jax.random.key(args.seed), args.md_molecule, 5, **options)  # imports, first SCF
    _, one = _timed(lambda: md.generate_trajectory(jax.random.key(args.seed), args.md_molecule, n, **options))
    print(
        f"\nMD generation: {args.md_molecule}, GFN2-xTB (tblite {version('tblite')}), "
        f"Langevin 500 K, 0.5 fs, {n} frames per trajectory"
    )
    print(f"{'way':34s} {'seconds':>8s} {'frames/s':>9s} {'ms/frame':>9s}")
    print(f"{'1 process':34s} {one:8.2f} {n / one:9.1f} {1e3 * one / n:9.2f}")
    p = args.md_processes
    if p > 1:
        keys = [jax.random.key(args.seed + 1 + i) for i in range(p)]
        _, many = _timed(lambda: md.generate_trajectories(keys, args.md_molecule, n, processes=p, **options))
        print(f"{f'{p} processes (incl. spawn)':34s} {many:8.2f} {p * n / many:9.1f} {1e3 * many / (p * n):9.2f}")


def training_table(args, frames) -> None:
    """Steps/s of ``training.train`` per config (batch ``args.batch_size``)."""
    import jax

    from jaxbench.tasks.mlff import nequip, training

    train_idx = np.arange(int(0.8 * frames.energy.shape[0]))
    print(
        f"\n{'config':8s} {'l_max':>5s} {'ch':>4s} {'layers':>6s} {'weights':>8s} {'steps':>6s} "
        f"{'compile s':>9s} {'s/step':>8s} {'steps/s':>8s}"
    )
    for name in args.configs.split(","):
        config = nequip.CONFIGS[name]
        steps = max(1, args.steps if name == "tiny" else args.steps // args.big_divisor)

        def run():
            return training.train(
                jax.random.key(args.seed),
                frames,
                train_idx,
                config,
                steps=steps,
                batch_size=args.batch_size,
                checkpoint_every=steps,
            )

        (params, _), first = _timed(run)
        _, warm = _timed(run)
        print(
            f"{name:8s} {config.l_max:5d} {config.channels:4d} {config.layers:6d} {nequip.num_weights(params):8d} "
            f"{steps:6d} {first - warm:9.1f} {warm / steps:8.4f} {steps / warm:8.2f}"
        )


def vmap_table(args, frames) -> None:
    """Wall time of M models in one vmapped program vs M sequential runs (both compiled first)."""
    import jax

    from jaxbench.tasks.mlff import nequip, training

    config = nequip.CONFIGS[args.vmap_config]
    m, steps = args.models, args.vmap_steps
    num_frames = frames.energy.shape[0]
    rng = np.random.default_rng(args.seed)
    index_sets = np.stack([rng.permutation(num_frames)[: int(0.8 * num_frames)] for _ in range(m)])
    keys = jax.random.split(jax.random.key(args.seed), m)
    common = dict(steps=steps, batch_size=args.batch_size, checkpoint_every=steps)

    def many():
        return training.train_many(keys, frames, index_sets, config, **common)

    def sequential():
        return [training.train(keys[i], frames, index_sets[i], config, **common) for i in range(m)]

    _, many_first = _timed(many)
    _, many_warm = _timed(many)
    _, seq_first = _timed(sequential)
    _, seq_warm = _timed(sequential)
    print(f"\n{m} models x {steps} steps, config {args.vmap_config}, batch {args.batch_size} (warm wall times)")
    print(f"{'way':34s} {'seconds':>8s} {'model-steps/s':>14s}")
    print(f"{'sequential: train() x ' + str(m):34s} {seq_warm:8.2f} {m * steps / seq_warm:14.2f}")
    print(f"{'vmapped: train_many()':34s} {many_warm:8.2f} {m * steps / many_warm:14.2f}")
    print(
        f"ratio sequential / vmapped: {seq_warm / many_warm:.2f}  "
        f"(first calls incl. compile: sequential {seq_first:.1f} s, vmapped {many_first:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="tiny,medium", help="comma-separated: tiny, medium, paper")
    parser.add_argument("--steps", type=int, default=100, help="timed steps for tiny")
    parser.add_argument("--big-divisor", type=int, default=5, help="other configs run steps // this")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--models", type=int, default=4, help="M for the vmap comparison (0: skip)")
    parser.add_argument("--vmap-config", default="tiny")
    parser.add_argument("--vmap-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--md-frames", type=int, default=300, help="frames per MD trajectory (0: skip MD)")
    parser.add_argument("--md-processes", type=int, default=2)
    parser.add_argument("--md-molecule", default="aspirin")
    args = parser.parse_args()

    import jax

    from jaxbench.tasks.mlff.training import Frames

    print("command:", shlex.join([sys.executable, *sys.argv]))
    devices = jax.devices()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__}, devices: "
        f"{len(devices)} x {devices[0].platform} ({devices[0].device_kind})"
    )
    frames = Frames(*synthetic_molecule(args.seed, ASPIRIN_FORMULA, args.frames))
    print(
        f"data: synthetic C9H8O4, {frames.species.shape[0]} atoms, {args.frames} frames, Morse labels; "
        f"force std {np.std(frames.forces):.2f} eV/Å"
    )
    if args.md_frames > 0:
        md_table(args)
    training_table(args, frames)
    if args.models > 0:
        vmap_table(args, frames)


if __name__ == "__main__":
    main()
