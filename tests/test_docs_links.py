"""Links in the documentation resolve: relative Markdown links (file and `#anchor`) and `docs/<page>.md` mentions.

Anchors follow GitHub's heading slugs (lower case, punctuation other than `-` and `_` dropped, spaces to `-`,
`-1`, `-2`, ... for repeated headings).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*/README.md"),
     *(ROOT / "spaces").glob("README.md")]
)  # fmt: skip
#: Where code and docs name a page as `docs/<page>.md`.
MENTION_DIRS = ("hf_slm", "examples", "spaces", "benchmarks", "tests", "docs")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
MENTION = re.compile(r"\bdocs/([\w-]+\.md)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def github_slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            slug = github_slug(match.group(1))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z+.-]*:", target)]


def test_slug_rule():
    assert github_slug("7. The shipped instruct variant (`instruct-default`)") == (
        "7-the-shipped-instruct-variant-instruct-default"
    )
    assert github_slug("Streaming (`hf_slm/streaming.py`)") == "streaming-hf_slmstreamingpy"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_docs_mentions_name_existing_pages():
    missing = []
    for folder in MENTION_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md"} or not path.is_file():
                continue
            for name in MENTION.findall(path.read_text(encoding="utf-8", errors="replace")):
                if not (ROOT / "docs" / name).exists():
                    missing.append(f"{path.relative_to(ROOT)} -> docs/{name}")
    for name in MENTION.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        if not (ROOT / "docs" / name).exists():
            missing.append(f"README.md -> docs/{name}")
    assert not missing, "mentions of missing doc pages: " + ", ".join(missing)
