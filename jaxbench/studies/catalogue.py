"""The study kinds of the core: their titles, questions and plots (a task may add its own)."""

from __future__ import annotations

from collections.abc import Callable

from jaxbench.studies import plots
from jaxbench.studies.context import StudyInfo
from jaxbench.studies.table import StudyResult


def line_plot(xlabel: str, caption: str, logx: bool = False) -> Callable[[StudyResult], list]:
    """``plot(result)``: every metric against the rows' x, one line per group."""
    return lambda r: [plots.metric_vs_x(r, f"study_{r.study}", caption, xlabel, logx=logx)]


def _breakdown_plots(r: StudyResult) -> list:
    return [
        plots.metric_vs_x(
            StudyResult(r.study, r.select(group=g)),
            f"study_breakdown_{i}",
            f"Per-sample metrics grouped by {g} (mean ± standard error).",
            g,
        )
        for i, g in enumerate(r.groups())
    ]


SAMPLE_EFFICIENCY = StudyInfo(
    "sample_efficiency",
    "Sample efficiency",
    "How does the metric improve with training-set size, and what does the fitted trend promise?",
    line_plot("training-set size", "Metric vs training-set size (mean ± std over seeds).", logx=True),
)
TIME_WINDOW_GRID = StudyInfo(
    "time_window_grid",
    "Time-domain extrapolation",
    "Which training windows of an ordered axis generalise to its final window?",
    lambda r: [
        plots.window_grid(r, "study_time_window_grid", "Training windows sorted by the test metric."),
        plots.metric_vs_x(
            r,
            "study_time_window_grid_lines",
            "Test metric vs window width, one line per start.",
            "window width (fraction)",
        ),
    ],
)
ROTATION_SCAN = StudyInfo(
    "rotation_scan",
    "Rotational invariance",
    "Does the metric stay flat when the test set is rotated?",
    line_plot("rotation angle (rad)", "Metric vs rotation angle of the test set."),
)


def _ood_plots(r: StudyResult) -> list:
    xlabel = r.summary.get("distance_unit", "distance from the training range")
    figures = [plots.metric_vs_x(r, f"study_{r.study}", "Metric vs distance from the training range.", xlabel)]
    ranges = plots.trusted_ranges(
        r,
        f"study_{r.study}_trusted",
        "Trusted ranges: points with their errors, the target (red), the fitted trend per side (blue), each "
        "limit with its bootstrap interval (blue band) and the measured range (green band).",
        xlabel,
    )
    maps = [
        plots.region_map(entry, f"study_{r.study}_map_{i}", f"2-D trusted map of {name}.", tuple(entry["features"]))
        for i, (name, entry) in enumerate(r.summary.get("maps", {}).items())
    ]
    return figures + ([ranges] if ranges is not None else []) + maps


FEATURE_OOD = StudyInfo(
    "feature_ood",
    "Feature out-of-distribution test",
    "Where, in distance from the training range of a feature, does the model stop being trustworthy?",
    _ood_plots,
)
VARIANTS = StudyInfo(
    "variants",
    "Variants (ablation)",
    "What does each model or input variant change, at each training-set size?",
    line_plot("training-set size", "Metric vs training-set size, one line per variant (mean ± std over seeds).", True),
)
ATTRIBUTION = StudyInfo(
    "attribution",
    "Attribution (permutation importance)",
    "Which inputs does the error depend on?",
    lambda r: [
        plots.importance_bars(
            r,
            f"study_{r.study}",
            "Increase of the per-sample metric when one input is shuffled across samples (mean ± standard error).",
        )
    ],
)
SIMILARITY = StudyInfo(
    "similarity",
    "Training-test similarity",
    "Does a descriptor similarity between a training set and the test set predict the test error?",
    lambda r: [
        plots.metric_vs_x(
            r,
            "study_similarity",
            "Test metric of each training set vs its similarity to the test set.",
            "similarity to the test set",
            scatter=True,
        )
    ],
)
BREAKDOWN = StudyInfo("breakdown", "Per-sample breakdown", "Which groups of samples carry the error?", _breakdown_plots)
CORRELATION = StudyInfo(
    "correlation",
    "Metric correlation",
    "Which data features does the per-sample error follow?",
    lambda r: [
        plots.correlation_scatter(
            r, "study_correlation", "Strongest metric-feature pairs (Spearman), with least-squares lines."
        )
    ],
)
STABILITY = StudyInfo(
    "stability",
    "Prediction stability",
    "How much do predictions move when only the random key changes?",
    lambda r: [plots.spread_hist(r, "study_stability", "Per-sample spread over keys; outliers circled.")],
)

CATALOGUE: dict[str, StudyInfo] = {
    info.name: info
    for info in (
        SAMPLE_EFFICIENCY,
        TIME_WINDOW_GRID,
        ROTATION_SCAN,
        FEATURE_OOD,
        VARIANTS,
        ATTRIBUTION,
        SIMILARITY,
        BREAKDOWN,
        CORRELATION,
        STABILITY,
    )
}
