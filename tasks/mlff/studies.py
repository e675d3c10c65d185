"""Training studies of ``mlff_aspirin-v0``: sample efficiency, time windows, SOAP similarity, error tracing and the
loss variants. The models of a size or a window width train as one vmapped program and are shared units: the
window models serve time_window_grid, similarity and error_tracing; the size models serve sample_efficiency,
error_tracing and the energy + force reference of the variants."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import ConfigError
from jaxbench.kernels import stats
from jaxbench.report import Figure, figure_png
from jaxbench.studies import StudyResult, analyses, catalogue, make_rows
from jaxbench.studies.context import Study, StudyContext, StudyInfo

from . import data, metrics, plots, soap, training
from .settings import TrainSettings

#: The loss variants (the first is the reference of the paired differences) and their force weight (None: the run's).
LOSS_VARIANTS = {"energy_and_forces": None, "energy_only": 0.0}


def named_key(key: jax.Array, name: str) -> jax.Array:
    """The sub-stream ``name`` of ``key``: ``fold_in(key, first 31 bits of sha256(name))``, as the runner's streams."""
    return jax.random.fold_in(key, int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF)


def train_and_evaluate(
    ctx: StudyContext, unit: str, keys: jax.Array, idx: np.ndarray, settings: TrainSettings | None = None
) -> list[dict]:
    """M models trained on the frames ``idx`` (M, n) in one program, each evaluated on the test frames:
    ``{metrics, energy_ev: predicted energy per test frame (eV), force_mae_mev_per_a: per test frame (meV/Å)}``."""
    settings = settings or ctx.config.training
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
    out = []
    for m in range(len(idx)):
        prediction = ctx.evaluate(ctx.items, ctx.key, shared=training.unstack(params, m))
        per_frame = ctx.task.per_sample_metrics(prediction, ctx.items)
        out.append(
            {
                "metrics": metrics.error_metrics(per_frame, metrics.num_atoms(ctx.items)),
                "energy_ev": metrics.predicted_energy_ev(prediction),
                "force_mae_mev_per_a": np.asarray(per_frame["force_mae_mev_per_a"]),
            }
        )
    return out


def size_trainer(
    ctx: StudyContext, variant: str = "", settings: TrainSettings | None = None
) -> tuple[Callable[[jax.Array, np.ndarray], dict], dict[int, dict]]:
    """``train_eval_many(keys (M,), idx (M, n) positions in the pool) -> {metric: (M,)}`` for the size studies
    and the entries it trained, ``{n: {"s<seed>": model entry with its train_idx}}``. The M models of a size train
    in one program, a shared unit ``sizes[.variant].n<n>.seeds<M>``: fed the subsets and keys of
    analyses.sample_efficiency on :func:`sizes_key`, sample_efficiency, error_tracing and variants share them."""
    pool, models = data.pool_and_test(ctx.data, ctx.config.data.split, ctx.config.data.test_fraction)[0], {}

    def train_eval_many(keys, idx):
        unit, frames = f"sizes{'.' + variant if variant else ''}.n{idx.shape[1]}.seeds{len(idx)}", pool[idx]

        def train():
            return {
                f"s{s}": {**entry, "train_idx": frames[s]}
                for s, entry in enumerate(train_and_evaluate(ctx, unit, keys, frames, settings))
            }

        models[idx.shape[1]] = ctx.stage(unit, train)
        entries = [models[idx.shape[1]][f"s{s}"] for s in range(len(idx))]  # a reloaded dict's keys are sorted
        return {k: np.asarray([e["metrics"][k] for e in entries]) for k in entries[0]["metrics"]}

    return train_eval_many, models


def sizes_key(ctx: StudyContext) -> jax.Array:
    """The key of the size studies' subsets and models (not ctx.key: shared units must not depend on the study
    that trains them)."""
    return named_key(ctx.shared_key, "sizes")


def pool_sizes(ctx: StudyContext, sizes: tuple[int, ...]) -> tuple[int, list[int], list[int]]:
    """(pool frames, the sizes that fit in the training pool, or the pool size if none does, the sizes beyond it)."""
    pool = len(data.pool_and_test(ctx.data, ctx.config.data.split, ctx.config.data.test_fraction)[0])
    return pool, [n for n in sizes if n <= pool] or [pool], [n for n in sizes if n > pool]


def _sample_efficiency(ctx: StudyContext) -> StudyResult:
    pool, fitting, skipped = pool_sizes(ctx, ctx.config.studies.efficiency_sizes)
    seeds, (trainer, _) = range(ctx.config.studies.efficiency_seeds), size_trainer(ctx)
    result = analyses.sample_efficiency(None, pool, fitting, seeds, sizes_key(ctx), train_eval_many=trainer)
    summary = {**result.summary, "pool_frames": pool, "skipped_sizes_beyond_pool": skipped}
    return StudyResult(result.study, result.rows, summary)


def window_models(ctx: StudyContext) -> tuple[dict, list]:
    """``{(start, width): {metrics, energy_ev, force_mae_mev_per_a, train_idx}}`` and the windows; a shared unit
    per width."""
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
                f"{s:g}": {**entry, "train_idx": i}
                for (s, _), entry, i in zip(row, train_and_evaluate(ctx, f"windows.w{width:g}", keys, idx), idx)
            }

        out.update({(float(s), width): v for s, v in ctx.stage(f"windows.w{width:g}", train_row).items()})
    return out, windows


def energy_error_mev(ctx: StudyContext, entry: dict) -> np.ndarray:
    """A model entry's signed energy error per test frame (n,): predicted minus reference, meV per molecule."""
    return 1e3 * (np.asarray(entry["energy_ev"], np.float64) - np.asarray(ctx.items.energy, np.float64))


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
    arrays = {f"energy_error.[{s:g}, {s + w:g})": energy_error_mev(ctx, v) for (s, w), v in results.items()}
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


def trace_summary(time_index: np.ndarray, energy_error: np.ndarray, force_mae: np.ndarray, atoms: int) -> dict:
    """What one model's per-frame errors along test time show: bias, MAE (meV, meV/atom), the largest error and
    when, the first test frame's error, the lag-1 autocorrelation of the signed error (time-correlated bias) and
    the Spearman correlation of |energy error| with the frame's force MAE. Shapes: (n,) each, time-ordered."""
    largest = int(np.argmax(np.abs(energy_error)))
    centred = energy_error - energy_error.mean()
    denominator = float(np.sum(centred**2))
    lag1 = float(np.sum(centred[1:] * centred[:-1]) / denominator) if denominator > 0 else float("nan")
    return {
        "energy_bias_mev": float(np.mean(energy_error)),
        "energy_mae_mev": float(np.mean(np.abs(energy_error))),
        "energy_mae_mev_per_atom": float(np.mean(np.abs(energy_error))) / atoms,
        "largest_error_mev": float(energy_error[largest]),
        "largest_error_time_index": int(time_index[largest]),
        "first_frame_error_mev": float(energy_error[0]),
        "lag1_autocorrelation": lag1,
        "force_mae_mev_per_a": float(np.mean(force_mae)),
        "spearman_abs_energy_vs_force_mae": float(stats.spearman(jnp.asarray(np.abs(energy_error)), force_mae)),
    }


def _error_tracing(ctx: StudyContext) -> StudyResult:
    windows, _ = window_models(ctx)
    widths = sorted({w for _, w in windows})
    narrow, wide = (min((s, w) for s, w in windows if w == width) for width in (widths[0], widths[-1]))
    pool, fitting, _ = pool_sizes(ctx, ctx.config.studies.efficiency_sizes)
    small, large = min(fitting), max(fitting)
    trainer, by_size = size_trainer(ctx)  # seed 0 of sample_efficiency's smallest and largest sizes
    analyses.sample_efficiency(
        None,
        pool,
        sorted({small, large}),
        range(ctx.config.studies.efficiency_seeds),
        sizes_key(ctx),
        train_eval_many=trainer,
    )

    def window(bounds):
        start, width = bounds
        return f"window [{start:g}, {start + width:g}) ({len(windows[bounds]['train_idx'])} frames)"

    models = {  # id: (comparison, label, entry); the report's summary table holds 40 lines: 4 labels + 4 x 9
        "window_narrow": ("window", window(narrow), windows[narrow]),
        "window_wide": ("window", window(wide), windows[wide]),
        "size_small": ("size", f"n={small} (whole pool, seed 0)", by_size[small]["s0"]),
        "size_large": ("size", f"n={large} (whole pool, seed 0)", by_size[large]["s0"]),
    }
    order = np.argsort(ctx.items.time_index, kind="stable")
    time_index, atoms = np.asarray(ctx.items.time_index)[order], metrics.num_atoms(ctx.items)
    arrays = {"time_index": time_index, "energy_reference_ev": np.asarray(ctx.items.energy, np.float64)[order]}
    rows, summary, labels = [], {}, {}
    for name, (group, label, entry) in models.items():
        if label in labels.values():  # one window width or one size: nothing to compare
            continue
        labels[name] = label
        error = energy_error_mev(ctx, entry)[order]
        force = np.asarray(entry["force_mae_mev_per_a"], np.float64)[order]
        arrays |= {
            f"{name}.energy_predicted_ev": np.asarray(entry["energy_ev"], np.float64)[order],
            f"{name}.energy_error_mev": error,
            f"{name}.force_mae_mev_per_a": force,
        }
        for t, e, f in zip(time_index, error, force):
            rows += make_rows(group, label, t, 0, {"energy_error_mev": e, "force_mae_mev_per_a": f}, support=1)
        summary[label] = trace_summary(time_index, error, force, atoms)
    summary["models"] = labels
    return StudyResult("error_tracing", tuple(rows), summary, arrays)


ERROR_TRACING = StudyInfo(
    "error_tracing",
    "Error tracing",
    "Along test time, where does the signed energy error of a narrow vs a wide training window, and of a small vs "
    "a large training set, sit, and does a frame's energy error follow its force error?",
    lambda r: [
        Figure(
            "study_error_tracing",
            "Signed energy error (predicted minus reference, meV per molecule) of every evaluated test frame along "
            "test time: left, a narrow and a wide training window of equal size; middle, a small and a large "
            "random training set from the whole pool. Right: per frame, |energy error| vs force MAE, one colour "
            "per model.",
            figure_png(plots.error_tracing(r.arrays, r.summary["models"])),
        )
    ],
)


def _variants(ctx: StudyContext) -> StudyResult:
    config, settings = ctx.config.studies, ctx.config.training
    if settings.energy_weight == 0:
        raise ConfigError(
            "variants: training.energy_weight=0 leaves the energy-only variant nothing to fit; set it > 0."
        )
    pool, fitting, skipped = pool_sizes(ctx, config.variant_sizes)
    variants = {}
    for name, weight in LOSS_VARIANTS.items():  # the reference is the run's loss: sample_efficiency's units
        changed = None if weight is None else dataclasses.replace(settings, force_weight=weight)
        variants[name] = (None, size_trainer(ctx, "" if weight is None else name, changed)[0])
    result = analyses.variant_study(variants, pool, fitting, range(config.variant_seeds), sizes_key(ctx))
    loss = (
        f"energy_and_forces: the run's loss (lambda_E={settings.energy_weight:g}, lambda_F={settings.force_weight:g}); "
        "energy_only: lambda_F=0 (forces are still the energy's gradient, and the per-species scale is still fitted "
        "to the training forces' RMS)"
    )
    reference, other = LOSS_VARIANTS
    headline = {  # "delta..." sorts before the core's difference_vs_reference in result.json and the report
        metric: {
            size: f"{d['mean']:+.4g} ± {d['error']:.2g}" if d["error"] is not None else f"{d['mean']:+.4g}"
            for size, d in result.summary["difference_vs_reference"][metric][other].items()
        }
        for metric in HEADLINE
    }
    summary = {
        f"delta_{other}_minus_{reference}": headline,
        "loss": loss,
        **result.summary,
        "skipped_sizes_beyond_pool": skipped,
    }
    return StudyResult(result.study, result.rows, summary)


#: The metrics of the headline paired differences (the report's summary shows them first).
HEADLINE = ("force_mae_mev_per_a", "energy_mae_mev_per_atom", "energy_mae_mev")


def _size_curves(r: StudyResult, caption: str) -> Figure:
    return Figure(f"study_{r.study}", caption, figure_png(plots.size_curves(r)))


SAMPLE_EFFICIENCY = dataclasses.replace(
    catalogue.SAMPLE_EFFICIENCY,
    plot=lambda r: [_size_curves(r, "Test errors vs training-set size (mean ± std over seeds), per species too.")],
)
VARIANTS = dataclasses.replace(
    catalogue.VARIANTS,
    question="What does training on energies only (force weight 0) instead of energies and forces change, at each "
    "training-set size?",
    plot=lambda r: [
        _size_curves(r, "Test error vs training-set size, one line per loss (mean ± std over seeds)."),
        Figure(
            "study_variants_differences",
            "Energy-only minus energy-and-forces loss, paired by training set and key: mean over seeds ± its "
            "standard error; above zero, the energy-only model errs more.",
            figure_png(plots.variant_differences(r.summary)),
        ),
    ],
)
STUDIES = {
    "sample_efficiency": Study(SAMPLE_EFFICIENCY, _sample_efficiency),
    "time_window_grid": Study(catalogue.TIME_WINDOW_GRID, _time_window_grid),
    "similarity": Study(catalogue.SIMILARITY, _similarity),
    "error_tracing": Study(ERROR_TRACING, _error_tracing),
    "variants": Study(VARIANTS, _variants),
}
