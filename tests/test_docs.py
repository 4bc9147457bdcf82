"""The documentation holds together: README.md stays short, every relative Markdown link in
README.md and docs/*.md reaches a file or folder of the repository, every `#anchor` names a
heading of its page by GitHub's slug rule, and the README's "Two commands" are exactly
`make run` and `make test`. No model, no network: text only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 250

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
# [text](target) or ![alt](target); the text may wrap onto the next line.
LINK = re.compile(r"\[[^\[\]]*\]\(([^()\s]*)\)")
MARKDOWN_LINK = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    kept, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            continue
        kept.append("" if fenced else line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text lower-cased, punctuation dropped except `-` and
    `_`, each space a `-`."""
    text = MARKDOWN_LINK.sub(r"\1", heading).lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose(page.read_text()).split("\n"):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text()))


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file, folder or heading does not exist."""
    broken = []
    for target in links(page):
        if not target or SCHEME.match(target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            broken.append(f"{target}: no such file or folder")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor in {resolved.name}")
    return broken


def test_the_readme_stays_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_links_every_page_under_docs() -> None:
    linked = {
        (REPO / target.partition("#")[0]).resolve()
        for target in links(README)
        if not SCHEME.match(target)
    }
    assert [page.name for page in sorted(DOCS.glob("*.md")) if page not in linked] == []


def test_the_two_commands_are_make_run_and_make_test() -> None:
    text = README.read_text()
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```[a-z]*\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block, 'README.md: no fenced block under "## Two commands"'
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert [command for command in commands if command] == ["make run", "make test"]


def test_the_slug_rule() -> None:
    assert slug("What the model does — measured") == "what-the-model-does--measured"
    assert slug("Orchestration: scheduled retraining and sweeps (Prefect)") == (
        "orchestration-scheduled-retraining-and-sweeps-prefect"
    )
    assert slug("The tagger's operating points (2026-12-07, issue 27)") == (
        "the-taggers-operating-points-2026-12-07-issue-27"
    )
    assert slug("`umcl drift` and [docs](x.md)") == "umcl-drift-and-docs"
