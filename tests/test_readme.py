"""The README's Python example runs as written."""

import re
from pathlib import Path


def test_readme_python_example_composes_the_task_fields(tmp_path, monkeypatch, capsys):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "task.evaluate" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip(), "the example prints the summary table"
