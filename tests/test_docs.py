"""The documentation stays true: the API reference is the OpenAPI document rendered, links resolve,
the README stays short, and the walk-through's calls all succeed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving.api_reference import render

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"(?m)^#+ (.+)$", page.read_text())
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_api_reference_is_the_openapi_document_rendered():
    assert (ROOT / "docs/api.md").read_text() == render(), \
        "docs/api.md is stale: python -m serving.api_reference > docs/api.md"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= 6 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"


@pytest.mark.slow
def test_the_walkthrough_runs_and_every_call_succeeds():
    result = subprocess.run([sys.executable, str(ROOT / "docs/walkthrough.py")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    statuses = re.findall(r"(?m)^(\d{3}):$", result.stdout)
    assert len(statuses) == 8 and all(s.startswith("2") for s in statuses), statuses
