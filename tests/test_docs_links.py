"""Every relative link of README.md and docs/ resolves, anchors included.

An anchor must name a heading of the target page under both slug rules that render the
pages: Python-Markdown's (the documentation site) and GitHub's (the repository).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.test_docs_examples import DOCS, ROOT, pages, rel

_LINK_RE = re.compile(
    r"(?<!\!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_IMAGE_RE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})")


def _prose(text: str) -> list[str]:
    """The page's lines outside fenced code blocks, with inline code blanked."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        opening = _FENCE_RE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            lines.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            lines.append("")
            continue
        lines.append(line)
    return lines


def _heading_text(raw: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links keep their text
    return text.replace("`", "").replace("*", "")


def slug_site(text: str) -> str:
    """Python-Markdown's ``toc`` slug."""
    value = unicodedata.normalize("NFKD", _heading_text(text)).encode("ascii", "ignore").decode()
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def slug_github(text: str) -> str:
    """GitHub's heading anchor."""
    value = _heading_text(text).strip().lower()
    value = "".join(c for c in value if c.isalnum() or c in " -_")
    return value.replace(" ", "-")


def anchors(page: Path) -> tuple[set[str], set[str]]:
    """The page's anchors under each slug rule, duplicates numbered as each renderer does."""
    site: set[str] = set()
    github: set[str] = set()
    for line in _prose(page.read_text(encoding="utf-8")):
        heading = _HEADING_RE.match(line)
        if heading is None:
            continue
        a, b = slug_site(heading.group(2)), slug_github(heading.group(2))
        n = 1
        base = a
        while a in site:
            a, n = f"{base}_{n}", n + 1
        n, base = 1, b
        while b in github:
            b, n = f"{base}-{n}", n + 1
        site.add(a)
        github.add(b)
    return site, github


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image in the page's prose."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(_prose(page.read_text(encoding="utf-8")), 1):
        line = re.sub(r"`[^`]*`", "", line)
        found += [(number, m.group(1)) for m in _LINK_RE.finditer(line)]
        found += [(number, m.group(1)) for m in _IMAGE_RE.finditer(line)]
    return found


def _broken(page: Path) -> list[str]:
    problems: list[str] = []
    for number, target in links(page):
        shown = rel(page) if page.is_relative_to(ROOT) else page.name
        where = f"{shown}:{number}: {target}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto:
        if target.startswith("/"):
            problems.append(f"{where}: absolute path; use a relative link")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if page.is_relative_to(DOCS) and not resolved.is_relative_to(DOCS):
            problems.append(f"{where}: outside docs/, which the site cannot serve")
            continue
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not a page")
                continue
            site, github = anchors(resolved)
            if anchor not in site or anchor not in github:
                problems.append(f"{where}: no heading with this anchor on both renderers")
    return problems


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert _broken(page) == []


def test_every_docs_page_is_reachable_from_the_readme_or_the_site_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", nav, re.M))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk - in_nav == set(), "pages missing from mkdocs.yml's nav"
    assert in_nav - on_disk == set(), "mkdocs.yml's nav names pages that do not exist"


def test_the_link_checker_finds_what_is_broken(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "# Top\n\n## Fault rules: `match`\n\n[ok](#fault-rules-match) [bad](#nowhere) "
        "[gone](missing.md) [web](https://example.org)\n\n```md\n[inside](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert [t for _, t in links(page)] == [
        "#fault-rules-match",
        "#nowhere",
        "missing.md",
        "https://example.org",
    ]
    problems = _broken(page)
    assert len(problems) == 2
    assert "#nowhere" in problems[0]
    assert "missing.md" in problems[1]


def test_the_two_slug_rules() -> None:
    assert slug_site("Retries and the 24-hour window") == "retries-and-the-24-hour-window"
    assert slug_github("Retries and the 24-hour window") == "retries-and-the-24-hour-window"
    assert slug_site("A — B") == "a-b"
    assert slug_github("A — B") == "a--b"
