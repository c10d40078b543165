# The docs stay true: every relative link (and its #anchor) leads somewhere,
# the README stays short and leads to every page of the manual, and
# ARCHITECTURE.md's map names every module, in its package's entry.

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "bench" / "README.md",
         *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE_SUFFIXES = (".py", ".pyx", ".pxd", ".h")


def _prose(text: str) -> str:
    # Links and headings outside code blocks only.
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        goal = (page.parent / path).resolve() if path else page
        assert goal.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
        if anchor:
            assert anchor in anchors(goal), f"{page.relative_to(ROOT)}: no heading for #{anchor} in {path or 'it'}"


def test_the_readme_is_short_and_leads_to_every_page() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= README_MAX_LINES
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(readme)}
    assert {page.resolve() for page in (ROOT / "docs").glob("*.md")} <= linked
    assert (ROOT / "ARCHITECTURE.md").resolve() in linked


def map_entries() -> dict[str, str]:
    """ARCHITECTURE.md's map: each entry's folder (as its first `name`) -> the entry's text."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## The map", 1)[1].split("\n## ", 1)[0]
    entries = re.split(r"\n(?=- `)", section)
    return {m.group(1): entry for entry in entries if (m := re.match(r"- `([^`]+)`", entry))}


def modules() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "fastroute", "proxy"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [name for name in listed if name.endswith(MODULE_SUFFIXES) and not name.endswith("__init__.py")]


def test_the_map_names_every_module_in_its_package_entry() -> None:
    entries = map_entries()
    everything = (ROOT / "ARCHITECTURE.md").read_text()
    unnamed = []
    for module in modules():
        folder, _, name = module.rpartition("/")
        entry = entries.get(folder + "/")
        if folder == "proxy":  # the top-level modules name themselves in full
            named = f"`{module}`" in everything
        else:
            named = entry is not None and f"`{name}`" in entry
        if not named:
            unnamed.append(module)
    assert not unnamed, f"ARCHITECTURE.md's map does not name: {', '.join(unnamed)}"
    assert len(modules()) > 80  # the listing worked
