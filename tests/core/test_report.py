"""Reports: self-contained HTML with escaped text, embedded plots, reproducibility; run comparison."""

import base64
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxbench import records
from jaxbench.report import (
    Figure,
    ReportSection,
    Table,
    compare_table,
    figure_png,
    format_cell,
    render_table_text,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MANIFEST = {
    "task_id": "fair_universe-v0",
    "config": {"n_pe_per_mu": 25, "learning_rate": 0.00123456789, "mu_grid": [0.5, 1.0]},
    "seed": 3,
    "key": "jax.random.key(3)",
    "status": "complete",
    "wall_time_s": 12.5,
    "timings_s": {"train": 10.25},
    "data_checksums": {"train": "ab" * 32},
    "environment": {
        "jaxbench_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "packages": {"jax": "0.10.2", "numpy": "2.4.6"},
        "devices": {"platform": "cpu", "device_kind": "cpu", "count": 8, "process_count": 1},
    },
}


def _plot(n: int) -> bytes:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.arange(n), np.arange(n) ** 2)
    return figure_png(fig)


def test_figure_png_gives_png_and_closes_the_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = figure_png(fig)
    assert png.startswith(PNG_MAGIC)
    assert not plt.fignum_exists(fig.number)


def test_report_holds_sections_embedded_figures_and_reproducibility(tmp_path):
    sections = [
        ReportSection(
            "Coverage",
            text="Nominal 68% intervals.\n\nSecond paragraph.",
            tables=(Table("Coverage by mu", ("mu", "coverage"), ((0.5, 0.6712345), (1.0, None))),),
            figures=(Figure("coverage", "Coverage vs mu", _plot(4)),),
        ),
        ReportSection("Calibration", figures=(Figure("calibration", "Pulls", _plot(5)),)),
    ]
    path = write_report(tmp_path, "fair_universe-v0 report", sections, MANIFEST)
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    for title in ("Coverage", "Calibration", "Reproducibility"):
        assert f"<h2>{title}</h2>" in page
    assert page.index("<h2>Coverage</h2>") < page.index("<h2>Calibration</h2>") < page.index("<h2>Reproducibility</h2>")
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 2
    for name, data in zip(("coverage", "calibration"), embedded):
        png = (tmp_path / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and base64.b64decode(data) == png
    assert "0.6712" in page and "—" in page and "<p>Second paragraph.</p>" in page
    # Reproducibility: task, exact config, seed, version + commit, packages, devices, checksums, timings.
    for expected in (
        "fair_universe-v0",
        "n_pe_per_mu",
        "0.00123456789",
        "jax.random.key(3)",
        "0.1.0",
        "0123456789abcdef0123456789abcdef01234567",
        "2.4.6",
        "8 × cpu",
        "ab" * 32,
        "10.25",
    ):
        assert expected in page, expected
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_report_escapes_text(tmp_path):
    evil = "<script>alert('x')</script>"
    sections = [ReportSection(evil, text=f"a < b & {evil}", tables=(Table(evil, ("<b>",), ((evil,),)),))]
    page = write_report(tmp_path, evil, sections, {"task_id": evil, "config": {"k": evil}}).read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "a &lt; b &amp;" in page


def test_report_rejects_clashing_or_unsafe_figure_names(tmp_path):
    png = _plot(2)
    twice = [ReportSection(title, figures=(Figure("roc", "", png),)) for title in ("A", "B")]
    with pytest.raises(ValueError, match="two figures are named 'roc'"):
        write_report(tmp_path, "t", twice, MANIFEST)
    with pytest.raises(ValueError, match="portable file name"):
        write_report(tmp_path, "t", [ReportSection("A", figures=(Figure("../roc", "", png),))], MANIFEST)


def test_cells_show_four_significant_digits_and_a_dash_for_missing():
    assert [format_cell(v) for v in (3.14159265, np.float32(1234567.0), 12, np.int64(5), None, "adam")] == [
        "3.142",
        "1.235e+06",
        "12",
        "5",
        "—",
        "adam",
    ]
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Table("t", ("a", "b", "c"), ((1, 2),))


def _fake_run(run_dir, task_id, metrics):
    records.atomic_write_json(run_dir / "manifest.json", {"task_id": task_id, "config": {}, "seed": 0})
    records.atomic_write_json(run_dir / "metrics.json", metrics)
    return run_dir


def test_compare_table_puts_metrics_in_rows_and_runs_in_columns(tmp_path):
    a = _fake_run(tmp_path / "run_a", "fair_universe-v0", {"coverage": 0.68, "fit": {"mu_bias": -0.01, "failed": 0}})
    b = _fake_run(tmp_path / "run_b", "fair_universe-v1", {"coverage": 0.7, "interval_width": float("nan")})
    table = compare_table([a, b])
    assert table.columns == ("metric", "run_a (fair_universe-v0)", "run_b (fair_universe-v1)")
    assert table.rows == (
        ("coverage", 0.68, 0.7),
        ("fit.failed", 0, None),
        ("fit.mu_bias", -0.01, None),
        ("interval_width", None, None),
    )


def test_render_table_text_aligns_columns():
    table = Table("Metrics", ("metric", "run"), (("coverage", 0.681234), ("interval_width", None)))
    lines = render_table_text(table).splitlines()
    assert lines[0] == "Metrics"
    assert lines[1].split() == ["metric", "run"]
    assert lines[3] == "coverage        0.6812"
    assert lines[4] == "interval_width       —"
    assert len({len(line) for line in lines[1:]}) == 1
