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
FEATURE_OOD = StudyInfo(
    "feature_ood",
    "Feature out-of-distribution test",
    "Where, in distance from the training range of a feature, does the model stop being trustworthy?",
    line_plot("distance from the training range", "Metric vs distance from the training range, one line per feature."),
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
        SIMILARITY,
        BREAKDOWN,
        CORRELATION,
        STABILITY,
    )
}
