"""Every ```python block in README.md and docs/*.md runs, so the examples cannot rot."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for page in PAGES:
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            line = page.read_text()[: m.start()].count("\n") + 1
            yield pytest.param(m.group(1), id=f"{page.relative_to(ROOT)}:{line}")


def test_the_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "pip install . && fastbp train" in first_block
    assert 'pip install ".[test]" && pytest' in first_block


@pytest.mark.parametrize("code", list(_blocks()))
def test_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})  # noqa: S102


def test_every_page_has_a_runnable_or_no_python_block():
    assert len(list(_blocks())) >= 3
    assert all(os.path.exists(p) for p in PAGES)
