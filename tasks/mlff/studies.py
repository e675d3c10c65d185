"""Training studies of ``mlff_aspirin-v0``: sample efficiency, time windows, SOAP similarity (the models of a
size or a window width train as one vmapped program; time_window_grid and similarity share the window models)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.studies import StudyResult, analyses, catalogue
from jaxbench.studies.context import Study, StudyContext

from . import data, metrics, soap, training


def train_and_evaluate(ctx: StudyContext, unit: str, keys: jax.Array, idx: np.ndarray) -> list[tuple[dict, np.ndarray]]:
    """(error metrics, energy error per test frame in meV) of M models trained on ``idx`` (M, n) in one program."""
    settings = ctx.config.training
    chunks = -(-settings.steps // settings.checkpoint_every)
    description = f"mlff: {unit} ({len(idx)} models)"
    with ctx.stage.progress(description, chunks) as advance:
        params, _ = training.train_many(
            keys,
            ctx.data.trajectory,
            idx,
            ctx.config.model,
            checkpoint_dir=ctx.stage.directory(unit),
            callback=lambda step, h: advance(info=f"mean loss {np.mean(h.loss[:, step - 1]):.3g}"),
            **dataclasses.asdict(settings),
        )
    predictions = [ctx.evaluate(ctx.items, ctx.key, shared=training.unstack(params, m)) for m in range(len(idx))]
    return [
        (
            metrics.error_metrics(ctx.task.per_sample_metrics(p, ctx.items), metrics.num_atoms(ctx.items)),
            metrics.energy_error_mev(p, ctx.items),
        )
        for p in predictions
    ]


def _sample_efficiency(ctx: StudyContext) -> StudyResult:
    pool = data.pool_and_test(ctx.data, ctx.config.data.split, ctx.config.data.test_fraction)[0]
    sizes = ctx.config.studies.efficiency_sizes

    def many(keys, idx):
        results = [m for m, _ in train_and_evaluate(ctx, f"{ctx.name}.n{idx.shape[1]}", keys, pool[idx])]
        return {k: np.asarray([r[k] for r in results]) for k in results[0]}

    result = analyses.sample_efficiency(
        None,
        len(pool),
        [n for n in sizes if n <= len(pool)] or [len(pool)],
        range(ctx.config.studies.efficiency_seeds),
        ctx.key,
        train_eval_many=many,
        stage=lambda name, fn: ctx.stage(f"{ctx.name}.{name}", fn),
    )
    return StudyResult(
        result.study,
        result.rows,
        {**result.summary, "pool_frames": len(pool), "skipped_sizes_beyond_pool": [n for n in sizes if n > len(pool)]},
    )


def window_models(ctx: StudyContext) -> tuple[dict, list]:
    """``{(start, width): {metrics, energy_error_mev, train_idx}}`` and the windows; a shared unit per width."""
    order, config = np.argsort(ctx.data.trajectory.time_index, kind="stable"), ctx.config.studies
    windows, _ = analyses.time_windows(
        len(order), config.window_starts, config.window_widths, ctx.config.data.test_fraction
    )
    key, out = ctx.shared_key, {}  # not ctx.key: the units must not depend on the study that trains them
    for width in sorted({w for _, w, _ in windows}):
        row = [(s, p) for s, w, p in windows if w == width]

        def train_row(row=row, width=width):
            n = min([config.window_frames] + [len(p) for _, p in row])  # equal sizes: one vmap
            idx = np.stack([np.sort(order[data.evenly_spaced(p, n)]) for _, p in row])
            keys = jnp.stack([jax.random.fold_in(key, round(s * 1000)) for s, _ in row])
            return {
                f"{s:g}": {"metrics": m, "energy_error_mev": e, "train_idx": i}
                for (s, _), (m, e), i in zip(row, train_and_evaluate(ctx, f"windows.w{width:g}", keys, idx), idx)
            }

        out.update({(float(s), width): v for s, v in ctx.stage(f"windows.w{width:g}", train_row).items()})
    return out, windows


def _time_window_grid(ctx: StudyContext) -> StudyResult:
    (results, windows), config = window_models(ctx), ctx.config.studies
    by_bounds = {(p[0], p[-1]): (s, w) for s, w, p in windows}
    result = analyses.time_window_grid(  # the models are trained already, one vmapped program per width
        lambda key, p, test: results[by_bounds[(p[0], p[-1])]]["metrics"],
        ctx.data.trajectory.num_frames,
        config.window_starts,
        config.window_widths,
        ctx.key,
        test_fraction=ctx.config.data.test_fraction,
        rank_by="force_mae_mev_per_a",
    )
    arrays = {f"energy_error.[{s:g}, {s + w:g})": np.asarray(v["energy_error_mev"]) for (s, w), v in results.items()}
    return StudyResult(
        result.study,
        result.rows,
        {**result.summary, "frames_per_window": config.window_frames},
        {**arrays, "eval_time_index": np.asarray(ctx.items.time_index)},
    )


def _similarity(ctx: StudyContext) -> StudyResult:
    (results, _), traj, config = window_models(ctx), ctx.data.trajectory, ctx.config
    windows, factor = sorted(results), config.studies.trust_force_mae_factor
    names = ("force_mae_mev_per_a", "energy_mae_mev", "energy_mae_mev_per_atom")
    similarity = ctx.stage(
        "similarity.soap",
        lambda: soap.subset_similarity(
            config.soap,
            traj.species,
            traj.positions,
            [results[w]["train_idx"] for w in windows],
            ctx.items.frame,
            config.studies.soap_frames,
        ),
    )
    errors = {m: np.asarray([results[w]["metrics"][m] for w in windows]) for m in names}
    target = {"force_mae_mev_per_a": (factor * errors["force_mae_mev_per_a"].min(), False)}
    result = analyses.similarity_trend(similarity, errors, [f"[{s:g}, {s + w:g})" for s, w in windows], target=target)
    return StudyResult(
        "similarity",
        result.rows,
        {
            **result.summary,
            "force_target": f"{factor} x the best window's force MAE",
            "descriptor": f"average SOAP ({config.soap}), kernel (p_a . p_b / |p_a||p_b|)^2 averaged over "
            "frame pairs, normalised by self-similarity",
        },
    )


STUDIES = {
    "sample_efficiency": Study(catalogue.SAMPLE_EFFICIENCY, _sample_efficiency),
    "time_window_grid": Study(catalogue.TIME_WINDOW_GRID, _time_window_grid),
    "similarity": Study(catalogue.SIMILARITY, _similarity),
}
