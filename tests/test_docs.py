"""Every ```python block in README.md and docs/*.md runs, so the examples cannot rot."""

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


def test_the_docs_have_runnable_examples():
    assert len(list(_blocks())) >= 3


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page):
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", FENCE.sub("", page.read_text()), re.M)}


def _links(page):
    """(target path or None for the page itself, anchor or None) of every relative link outside code blocks."""
    for m in LINK.finditer(FENCE.sub("", page.read_text())):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield (page.parent / path).resolve() if path else page, anchor or None


def test_every_link_in_the_docs_resolves():
    broken = []
    for page in PAGES:
        for target, anchor in _links(page):
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)} -> {target.name}#{anchor}")
    assert not broken, broken


def test_every_docs_page_is_linked_and_every_page_linked_from_the_index_exists():
    index = ROOT / "docs" / "index.md"
    from_index = {t for t, _ in _links(index)}
    assert {ROOT / "docs" / n for n in ("guide.md", "api.md", "cli.md")} <= from_index
    assert all(t.exists() for t in from_index), sorted(map(str, from_index))
    linked = from_index | {t for t, _ in _links(ROOT / "README.md")}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked and p != index]
    assert not orphans, f"docs pages linked from neither README.md nor docs/index.md: {orphans}"


def test_the_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n[ok](p.md#title) [gone](missing.md) [bad anchor](p.md#nope)\n```\n[code](x.md)\n```\n")
    assert [(t.name, a) for t, a in _links(page)] == [("p.md", "title"), ("missing.md", None), ("p.md", "nope")]
    assert _anchors(page) == {"title"} and _slug("The `fastbp` command") == "the-fastbp-command"
