"""The structural-interpretation studies as pure functions over callables and per-sample arrays.

A study never knows which task it serves. It receives what it needs as functions and arrays:

* studies that *train* (sample efficiency, time windows, feature OOD) take
  ``train_eval(key, train_idx, ...) -> {metric: scalar}`` and a ``stage(name, fn)`` hook; a
  :class:`jaxbench.runner.Run` passes ``run.stage`` so every trained unit is checkpointed and
  ``--resume`` continues an interrupted study (the default hook just calls ``fn()``);
* studies that *probe* a trained model (rotation scan, stability) take the model
  as a function of the probe (an angle, a transformed input, a key);
* studies that *reduce* (breakdown, correlation) take per-sample arrays and reduce them with the
  jitted kernels of :mod:`jaxbench.kernels.stats`; the field studies of forecasts over lead time
  (frame slices, trends, centroids, active area, cumulative) live in :mod:`jaxbench.kernels.fields`.

Each returns a :class:`~jaxbench.studies.table.StudyResult` whose ``summary`` states the
answer in numbers (a fitted trend, a range, a delta), not only a plot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import ConfigError
from jaxbench.kernels import stats
from jaxbench.studies.ranges import trusted_range
from jaxbench.studies.table import Row, StudyResult, make_rows

Stage = Callable[[str, Callable[[], Any]], Any]
Metrics = Mapping[str, Any]


def direct(name: str, fn: Callable[[], Any]) -> Any:
    """The default stage hook: no checkpointing."""
    del name
    return fn()


def scalars(values: Metrics, where: str) -> dict[str, float]:
    """Scalar metrics as floats, in name order (a checkpointed unit reloads in the same order)."""
    out = {}
    for name, value in sorted(values.items()):
        array = np.asarray(value)
        if array.size != 1:
            raise ValueError(f"{where}: metric '{name}' must be a scalar, got shape {array.shape}.")
        out[name] = float(array.reshape(()))
    return out


def fit_summary(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The least-squares line of y vs x (float32) as plain floats."""
    fit = stats.linear_fit(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    return {k: float(v) for k, v in fit._asdict().items()}


# -- 1. sample efficiency ------------------------------------------------------------------------
def sample_efficiency(
    train_eval: Callable[[jax.Array, np.ndarray], Metrics],
    pool_size: int,
    sizes: Sequence[int],
    seeds: Sequence[int],
    key: jax.Array,
    *,
    stage: Stage = direct,
    train_eval_many: Callable[[jax.Array, np.ndarray], Metrics] | None = None,
) -> StudyResult:
    """Metrics of models trained on nested subsets of a pool, for several seeds.

    For seed ``s`` the pool is permuted with ``fold_in(key, s)`` and the model of size ``n``
    trains on the first ``n`` indices, so the subsets of one seed are nested. ``train_eval(key,
    idx)`` trains on ``idx`` (sorted) and returns scalar metrics on a fixed test set. With
    ``train_eval_many(keys (M,), idx (M, n))`` the seeds of one size train as one program (e.g.
    ``vmap``-ed) and return ``{metric: (M,)}``.

    Summary per metric: ``loglinear`` (value = intercept + slope * log10 n) and, when every value
    is positive, ``power_law`` (log value vs log n: the exponent; -0.5 for an error that falls as
    1/sqrt(n)).
    """
    sizes = sorted(int(n) for n in sizes)
    if not sizes or sizes[0] < 1 or sizes[-1] > pool_size:
        raise ConfigError(f"sample_efficiency: sizes must lie in [1, {pool_size}] (got {sizes}).")
    perms = {s: np.asarray(jax.random.permutation(jax.random.fold_in(key, s), pool_size)) for s in seeds}
    rows: list[Row] = []
    for n in sizes:
        keys = [jax.random.fold_in(jax.random.fold_in(key, s), n) for s in seeds]
        subsets = [np.sort(perms[s][:n]) for s in seeds]
        if train_eval_many is not None:
            stacked = stage(f"n{n}", lambda: dict(train_eval_many(jnp.stack(keys), np.stack(subsets))))
            per_seed = [{m: np.asarray(v)[i] for m, v in stacked.items()} for i in range(len(seeds))]
        else:
            per_seed = [
                stage(f"n{n}_s{s}", lambda k=k, idx=idx: dict(train_eval(k, idx)))
                for s, k, idx in zip(seeds, keys, subsets)
            ]
        for s, values in zip(seeds, per_seed):
            rows += make_rows("", f"n={n}", n, s, scalars(values, f"sample_efficiency n={n}"), support=n)
    result = StudyResult("sample_efficiency", tuple(rows))
    summary = {}
    for metric in result.metrics():
        n, v = result.column("x", metric), result.column("value", metric)
        entry = {"loglinear": fit_summary(np.log10(n), v)}
        if np.all(v > 0):
            entry["power_law"] = fit_summary(np.log(n), np.log(v))
        summary[metric] = entry
    return StudyResult("sample_efficiency", tuple(rows), {"sizes": sizes, "seeds": list(seeds), "fits": summary})


# -- ablation: variants x sizes x seeds ------------------------------------------------------------
def variant_study(
    variants: Mapping[str, tuple[Callable | None, Callable | None]],
    pool_size: int,
    sizes: Sequence[int],
    seeds: Sequence[int],
    key: jax.Array,
    *,
    stage: Stage = direct,
) -> StudyResult:
    """K variants (an input representation, a model switch, a loss weight) x training sizes x seeds.

    ``variants`` maps a name to ``(train_eval, train_eval_many)`` as in :func:`sample_efficiency`
    (either may be None). Every variant trains on the same nested subsets with the same keys, so
    differences are paired by (size, seed). Rows: group = variant. Summary per metric and size:
    each variant minus the first (the reference), mean over seeds with its standard error.
    """
    names = list(variants)
    if len(names) < 2:
        raise ConfigError(f"variant_study: needs at least two variants (got {names}).")
    parts = {}
    for name, (one, many) in variants.items():
        prefixed = lambda unit, fn, name=name: stage(f"{name}.{unit}", fn)  # noqa: E731
        parts[name] = sample_efficiency(one, pool_size, sizes, seeds, key, stage=prefixed, train_eval_many=many)
    rows = tuple(r._replace(group=name) for name, part in parts.items() for r in part.rows)
    reference = parts[names[0]]
    differences: dict[str, Any] = {}
    for metric in reference.metrics():
        base = {(r.x, r.seed): r.value for r in reference.select(metric)}
        for name in names[1:]:
            by_size: dict[float, list[float]] = {}
            for r in parts[name].select(metric):
                by_size.setdefault(r.x, []).append(r.value - base[(r.x, r.seed)])
            differences.setdefault(metric, {})[name] = {
                f"n={int(n)}": {
                    "mean": float(np.mean(d)),
                    "error": float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None,
                    "seeds": len(d),
                }
                for n, d in sorted(by_size.items())
            }
    fits = {name: part.summary["fits"] for name, part in parts.items()}
    summary = {"reference": names[0], "variants": names, "difference_vs_reference": differences, "fits": fits}
    return StudyResult("variants", rows, summary)


# -- 2. time-domain extrapolation ----------------------------------------------------------------
def time_windows(
    n_ordered: int, starts: Sequence[float], widths: Sequence[float], test_fraction: float = 0.1
) -> tuple[list[tuple[float, float, np.ndarray]], np.ndarray]:
    """The training windows (start, width, positions) that end before the final test window.

    Positions index a time-ordered axis of length ``n_ordered``; fractions are of the whole
    axis. A window fits when start + width <= 1 - test_fraction (1e-9 tolerance).
    """
    test_start = int(round((1.0 - test_fraction) * n_ordered))
    windows = []
    for start in starts:
        for width in widths:
            if start < 0 or width <= 0 or start + width > 1.0 - test_fraction + 1e-9:
                continue
            lo, hi = int(round(start * n_ordered)), min(int(round((start + width) * n_ordered)), test_start)
            if hi > lo:
                windows.append((float(start), float(width), np.arange(lo, hi)))
    return windows, np.arange(test_start, n_ordered)


def time_window_grid(
    train_eval: Callable[[jax.Array, np.ndarray, np.ndarray], Metrics],
    n_ordered: int,
    starts: Sequence[float],
    widths: Sequence[float],
    key: jax.Array,
    *,
    test_fraction: float = 0.1,
    stage: Stage = direct,
    rank_by: str | None = None,
    higher_is_better: bool = False,
) -> StudyResult:
    """Models trained on a grid of windows (start x width) of an ordered axis, tested on its end.

    ``train_eval(key, train_positions, test_positions)`` returns scalar metrics. Windows that do
    not end before the test window are skipped (listed in the summary). The summary ranks the
    windows by ``rank_by`` (default: the first metric).
    """
    windows, test = time_windows(n_ordered, starts, widths, test_fraction)
    if not windows:
        raise ConfigError(
            f"time_window_grid: no window of starts {list(starts)} x widths {list(widths)} "
            f"ends before the test window (last {test_fraction:.0%})."
        )
    rows: list[Row] = []
    for start, width, train in windows:
        name = f"w{start:g}_{width:g}"
        values = stage(name, lambda k=jax.random.fold_in(key, len(rows)), t=train: dict(train_eval(k, t, test)))
        label = f"[{start:g}, {start + width:g})"
        rows += make_rows(f"start={start:g}", label, width, 0, scalars(values, f"window {label}"), support=len(train))
    result = StudyResult("time_window_grid", tuple(rows))
    metric = rank_by or result.metrics()[0]
    ranked = sorted(result.select(metric), key=lambda r: r.value, reverse=higher_is_better)
    fitting = {(s, w) for s, w, _ in windows}
    skipped = [[float(s), float(w)] for s in starts for w in widths if (float(s), float(w)) not in fitting]
    summary = {
        "ranked_by": metric,
        "ranking": [[r.slice, r.value] for r in ranked],
        "test_window": [int(test[0]), int(test[-1]) + 1],
        "skipped": skipped,
    }
    return StudyResult("time_window_grid", tuple(rows), summary)


# -- 5. rotational invariance ---------------------------------------------------------------------
def rotation_matrix(axis: str, angle: Any) -> jax.Array:
    """The 3x3 matrix of a right-handed rotation by ``angle`` (radians) about 'x', 'y' or 'z'."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    one, zero = jnp.ones_like(c), jnp.zeros_like(c)
    if axis == "z":
        m = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    elif axis == "y":
        m = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    elif axis == "x":
        m = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    else:
        raise ConfigError(f"rotation axis must be 'x', 'y' or 'z', got {axis!r}.")
    return jnp.stack([jnp.stack(r, axis=-1) for r in m], axis=-2)


def rotation_scan(
    evaluate: Callable[[float], Metrics], angles: Sequence[float], *, stage: Stage = direct, unit: str = "rad"
) -> StudyResult:
    """A metric of the test set rotated through ``angles``: ``evaluate(angle) -> {metric: scalar}``.

    Summary per metric: best, worst and their difference (``delta``), and the angles where they
    occur. An exactly invariant model gives delta 0.
    """
    rows: list[Row] = []
    for i, angle in enumerate(angles):
        values = stage(f"a{i}", lambda a=float(angle): dict(evaluate(a)))
        rows += make_rows("", f"{angle:g} {unit}", angle, 0, scalars(values, f"angle {angle}"))
    result = StudyResult("rotation_scan", tuple(rows))
    summary = {}
    for metric in result.metrics():
        v, a = result.column("value", metric), result.column("x", metric)
        summary[metric] = {
            "max": float(v.max()),
            "min": float(v.min()),
            "delta": float(v.max() - v.min()),
            "argmax": float(a[v.argmax()]),
            "argmin": float(a[v.argmin()]),
        }
    return StudyResult("rotation_scan", tuple(rows), {"unit": unit, "metrics": summary})


# -- 10. feature out-of-distribution ---------------------------------------------------------------
class OODPartition(NamedTuple):
    """Training and test sets of the feature out-of-distribution test (one model per training range).

    train: per range, the training indices (equal total size). test: per bin, the indices of the
    separate test set in that bin. support: (bins,) test counts. distance: (ranges, bins) signed
    distance of each bin's centre from the range (0 inside, negative below, positive above), in
    feature units; bin_offset: the same in bins.
    """

    train: list[np.ndarray]
    test: list[np.ndarray]
    support: np.ndarray
    distance: np.ndarray
    bin_offset: np.ndarray


def nested_ranges(n_bins: int, start: int = 0) -> list[tuple[int, int]]:
    """The method's widening training ranges ``[start, start + k)`` of bins, k = 1 .. n_bins - start."""
    return [(start, stop) for stop in range(start + 1, n_bins + 1)]


def ood_partition(
    train_feature: Any,
    test_feature: Any,
    edges: Sequence[float],
    ranges: Sequence[tuple[int, int]],
    key: jax.Array,
    total: int | None = None,
) -> OODPartition:
    """The method's feature-OOD partition (section 5.4): nested training ranges of equal total size.

    Each range ``(lo, hi)`` (bins lo .. hi-1) gets ``total`` training samples drawn uniformly
    without replacement from the training-set samples in the range (so wide ranges sample each of
    their bins more thinly); ``total`` defaults to the population of the smallest range. Every
    model is tested on every bin of the **separate** test set; an empty test bin inside a training
    range is an error (its metric would be NaN), other empty bins report support 0.
    """
    edges = np.asarray(edges, float)
    n_bins = len(edges) - 1

    def bins_of(feature):
        feature = np.asarray(feature, float)
        which = np.searchsorted(edges, feature, side="right") - 1
        return np.where(feature == edges[-1], n_bins - 1, np.where((which < 0) | (which >= n_bins), -1, which))

    train_bin, test_bin = bins_of(train_feature), bins_of(test_feature)
    for lo, hi in ranges:
        if not 0 <= lo < hi <= n_bins:
            raise ConfigError(f"ood_partition: range ({lo}, {hi}) is not within the {n_bins} bins.")
    pools = [np.flatnonzero((train_bin >= lo) & (train_bin < hi)) for lo, hi in ranges]
    total = min(len(p) for p in pools) if total is None else int(total)
    if total < 1 or any(len(p) < total for p in pools):
        raise ConfigError(
            f"ood_partition: total={total} training samples per range, but the ranges hold {[len(p) for p in pools]}."
        )
    train = [
        np.sort(pool[np.asarray(jax.random.choice(jax.random.fold_in(key, r), len(pool), (total,), replace=False))])
        for r, pool in enumerate(pools)
    ]
    test = [np.flatnonzero(test_bin == b) for b in range(n_bins)]
    support = np.array([len(t) for t in test])
    for lo, hi in ranges:
        empty = [b for b in range(lo, hi) if support[b] == 0]
        if empty:
            raise ConfigError(f"ood_partition: test bins {empty} inside the training range ({lo}, {hi}) are empty.")
    centres, index = 0.5 * (edges[1:] + edges[:-1]), np.arange(n_bins)
    distance = np.array(
        [np.where(centres < edges[lo], centres - edges[lo], np.maximum(centres - edges[hi], 0.0)) for lo, hi in ranges]
    )
    offset = np.array([np.where(index < lo, index - lo, np.maximum(index - (hi - 1), 0)) for lo, hi in ranges])
    return OODPartition(train, test, support, distance, offset)


def feature_ood(
    evaluate: Callable[[int], Metrics],
    labels: Sequence[str],
    distances: Sequence[float],
    feature: str,
    *,
    support: Sequence[int] | None = None,
    stage: Stage = direct,
    target: Mapping[str, tuple[float, bool]] | None = None,
    binomial: Sequence[str] = (),
    trend: str = "linear",
) -> StudyResult:
    """Metrics per feature bin against the bin's distance from the training range.

    ``evaluate(bin) -> {metric: scalar}`` for each bin (after training on the training bins, or
    evaluating a fixed model at a shifted condition). ``target`` maps metrics to (target value,
    higher_is_better); for those, the summary holds the :func:`~jaxbench.studies.ranges.trusted_range`
    with its intervals. Metrics in ``binomial`` are fractions of the bin's ``support`` trials
    (coverage, accuracy): their errors are binomial.
    """
    rows: list[Row] = []
    for b, (label, d) in enumerate(zip(labels, distances)):
        values = stage(f"{feature}_b{b}", lambda b=b: dict(evaluate(b)))
        n = 0 if support is None else int(support[b])
        rows += make_rows(feature, label, d, 0, scalars(values, f"{feature} bin {label}"), support=n)
    result = StudyResult("feature_ood", tuple(rows))
    found = {}
    for metric, (value, higher) in (target or {}).items():
        found[metric] = trusted_range(
            result.column("x", metric, feature),
            result.column("value", metric, feature),
            value,
            higher_is_better=higher,
            support=None if support is None else result.column("support", metric, feature),
            binomial=metric in binomial,
            trend=trend,
        )
    return StudyResult("feature_ood", tuple(rows), {feature: {"trusted_range": found}})


# -- 11. per-sample breakdown ------------------------------------------------------------------------
def bin_feature(
    values: Any, n_bins: int = 5, edges: Sequence[float] | None = None
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Integer bins of a continuous feature: equal-count (quantile) bins unless ``edges`` given.

    Returns (bin id per sample, labels, bin centres).
    """
    values = np.asarray(values, float)
    if edges is None:
        edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)))
    edges = np.asarray(edges, float)
    ids = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    labels = tuple(
        f"[{edges[i]:.3g}, {edges[i + 1]:.3g}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)
    )
    return ids, labels, 0.5 * (edges[1:] + edges[:-1])


def per_sample_breakdown(
    metrics: Mapping[str, Any], groupings: Mapping[str, tuple[Any, Sequence[str], Sequence[float] | None]]
) -> StudyResult:
    """Per-sample metrics grouped by labels or binned features: mean, standard error, support.

    ``groupings[name] = (ids (S,), labels, positions or None)``: the group id of every sample,
    a label per group and its position on a plot axis (default: 0, 1, ...).
    """
    rows: list[Row] = []
    for grouping, (ids, labels, positions) in groupings.items():
        ids = jnp.asarray(ids, jnp.int32)
        positions = list(range(len(labels))) if positions is None else list(positions)
        for metric, values in metrics.items():
            g = stats.group_stats(jnp.asarray(values, jnp.float32), ids, len(labels))
            for i, label in enumerate(labels):
                if int(g.count[i]) == 0:
                    continue
                rows.append(
                    Row(
                        grouping,
                        str(label),
                        float(positions[i]),
                        0,
                        metric,
                        float(g.mean[i]),
                        float(g.sem[i]),
                        int(g.count[i]),
                    )
                )
    return StudyResult("breakdown", tuple(rows))


# -- 12. metric correlation ----------------------------------------------------------------------------
def metric_correlation(metrics: Mapping[str, Any], features: Mapping[str, Any], max_points: int = 4000) -> StudyResult:
    """Pearson and Spearman coefficients and a least-squares line for every (metric, feature) pair.

    Rows: group ``metric~feature``; metrics pearson, spearman, slope (error: its standard error),
    intercept, r2. ``arrays`` keeps up to ``max_points`` samples of every column for scatter plots.
    """
    rows: list[Row] = []
    columns = {**{f"metric.{k}": v for k, v in metrics.items()}, **{f"feature.{k}": v for k, v in features.items()}}
    n = None
    for name, v in columns.items():
        size = np.asarray(v).shape
        if len(size) != 1 or (n is not None and size[0] != n):
            raise ValueError(f"metric_correlation: '{name}' must be (S,) like the others, got {size}.")
        n = size[0]
    for m, mv in metrics.items():
        y = jnp.asarray(mv, jnp.float32)
        for f, fv in features.items():
            x = jnp.asarray(fv, jnp.float32)
            fit = stats.linear_fit(x, y)
            values = {
                "pearson": stats.pearson(x, y),
                "spearman": stats.spearman(x, y),
                "slope": fit.slope,
                "intercept": fit.intercept,
                "r2": fit.r2,
            }
            rows += make_rows(
                f"{m}~{f}", f, 0.0, 0, scalars(values, "metric_correlation"), support=n, errors={"slope": fit.slope_err}
            )
    step = max(1, -(-n // max_points))
    arrays = {k: np.asarray(v)[::step] for k, v in columns.items()}
    strongest = sorted(([r.group, r.value] for r in rows if r.metric == "spearman"), key=lambda t: -abs(t[1]))
    return StudyResult("correlation", tuple(rows), {"strongest_spearman": strongest[:10]}, arrays)


# -- 13. prediction stability -----------------------------------------------------------------------
def prediction_stability(
    predict: Callable[[jax.Array], Metrics],
    key: jax.Array,
    n_keys: int,
    outlier_iqr: float = 3.0,
    use_vmap: bool = True,
) -> StudyResult:
    """The same samples through ``n_keys`` keys: the per-sample spread of each metric.

    ``predict(key) -> {metric: (S,)}`` (vmapped over keys unless ``use_vmap`` is False). The
    per-sample standard deviation over keys is kept in ``arrays``; a sample is an outlier when its
    spread exceeds q75 + ``outlier_iqr`` * IQR of all spreads. Rows per metric: mean and max
    spread, and the outlier fraction; the summary lists outlier indices.
    """
    keys = jax.random.split(key, n_keys)
    if use_vmap:
        outputs = jax.vmap(predict)(keys)
    else:
        per_key = [predict(k) for k in keys]
        outputs = {m: jnp.stack([o[m] for o in per_key]) for m in per_key[0]}
    rows: list[Row] = []
    arrays, outliers = {}, {}
    for metric, values in outputs.items():
        values = np.asarray(values, float)  # (K, S)
        spread = values.std(axis=0, ddof=1) if n_keys > 1 else np.zeros(values.shape[1])
        q25, q75 = np.quantile(spread, [0.25, 0.75])
        flagged = np.flatnonzero(spread > q75 + outlier_iqr * (q75 - q25))
        arrays[f"{metric}.mean"] = values.mean(axis=0)
        arrays[f"{metric}.spread"] = spread
        outliers[metric] = flagged.tolist()
        rows += make_rows(
            "",
            metric,
            0.0,
            0,
            {"spread_mean": spread.mean(), "spread_max": spread.max(), "outlier_fraction": len(flagged) / spread.size},
            support=int(spread.size),
        )
        rows[-3:] = [r._replace(metric=f"{metric}.{r.metric}") for r in rows[-3:]]
    return StudyResult("stability", tuple(rows), {"n_keys": n_keys, "outliers": outliers}, arrays)


# -- similarity between training and test data vs test error ------------------------------------------
def similarity_trend(
    similarity: Any,
    metrics: Mapping[str, Any],
    labels: Sequence[str],
    target: Mapping[str, tuple[float, bool]] | None = None,
) -> StudyResult:
    """Does a descriptor similarity between each training set and the test set predict its error?

    One unit per training set (a window, a subset): ``similarity`` (U,) and ``metrics`` {name:
    (U,)}. Summary per metric: Pearson and Spearman coefficients, the least-squares line vs
    similarity, and for metrics in ``target`` (value, higher_is_better) the similarity above
    which the line meets the target (``min_similarity``; None if the trend never gets there):
    the trusted-range indicator for a new training set.
    """
    s = np.asarray(similarity, float)
    rows: list[Row] = []
    summary: dict[str, Any] = {}
    for name, values in metrics.items():
        v = np.asarray(values, float)
        for label, si, vi in zip(labels, s, v):
            rows.append(Row("", str(label), float(si), 0, name, float(vi)))
        fit = fit_summary(s, v)
        entry = {
            "pearson": float(stats.pearson(jnp.asarray(s), jnp.asarray(v))),
            "spearman": float(stats.spearman(jnp.asarray(s), jnp.asarray(v))),
            "fit": fit,
        }
        if target and name in target:
            value, higher = target[name]
            slope, intercept = fit["slope"], fit["intercept"]
            improves = slope > 0 if higher else slope < 0
            entry["target"] = value
            entry["min_similarity"] = float((value - intercept) / slope) if improves and slope != 0 else None
        summary[name] = entry
    return StudyResult("similarity", tuple(rows), summary)


# -- attribution: permutation importance -------------------------------------------------------------
def permutation_importance(
    metric_fn: Callable[[jax.Array], jax.Array],
    inputs: Any,
    key: jax.Array,
    names: Sequence[str],
    *,
    n_repeats: int = 5,
    higher_is_better: bool = False,
    group: str = "",
) -> StudyResult:
    """How much a per-sample metric degrades when one input feature is shuffled across samples.

    ``metric_fn(inputs (N, F)) -> (N,)`` must be jit-compatible; the features run as one compiled
    program (``lax.map`` over features, ``vmap`` over ``n_repeats`` permutations). The degradation of
    feature f is the mean over samples and repeats of ``metric(shuffled f) - metric(original)``,
    signed so that positive is worse; its error is the standard error of the per-sample differences
    (averaged over the repeats). Rows: slice = feature name, x = feature index.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[1] != len(names):
        raise ConfigError(
            f"permutation_importance: inputs {inputs.shape} must be (N, {len(names)}), one column per name."
        )
    sign = -1.0 if higher_is_better else 1.0
    base = metric_fn(inputs)

    def shuffled(f, k):
        column = jax.random.permutation(k, inputs[:, f])
        return metric_fn(inputs.at[:, f].set(column))

    def per_feature(f):
        keys = jax.random.split(jax.random.fold_in(key, f), n_repeats)
        return jax.vmap(lambda k: shuffled(f, k))(keys)  # (R, N)

    permuted = jax.jit(lambda: jax.lax.map(per_feature, jnp.arange(len(names))))()  # (F, R, N)
    diff = np.asarray(sign * (permuted.mean(axis=1) - base[None, :]), np.float64)  # (F, N)
    rows: list[Row] = []
    for f, name in enumerate(names):
        error = float(diff[f].std(ddof=1) / np.sqrt(diff.shape[1]))
        value = {"degradation": float(diff[f].mean())}
        rows += make_rows(group, name, f, 0, value, support=diff.shape[1], errors={"degradation": error})
    order = np.argsort(-diff.mean(axis=1))
    return StudyResult(
        "attribution",
        tuple(rows),
        {
            "base_metric_mean": float(np.mean(np.asarray(base))),
            "ranking": [names[i] for i in order],
            "n_repeats": n_repeats,
            "definition": "mean over samples of metric(feature shuffled) - metric(original), positive = worse",
        },
    )
