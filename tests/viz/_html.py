"""Checks of report pages shared by the report tests (plain text, no browser)."""

from __future__ import annotations

import re

#: Anything that would make a browser fetch a resource from elsewhere.
NETWORK_PATTERNS = (
    r"""\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:|//|ftp:)""",
    r"""url\(\s*["']?\s*(?:https?:|//)""",
    r"@import",
    r"<script[^>]*\bsrc\s*=",
    r"<link[^>]*rel\s*=\s*[\"']?stylesheet",
    r"\bfetch\s*\(",
    r"XMLHttpRequest",
    r"<iframe",
)


def network_loads(doc: str) -> list[str]:
    """The snippets of ``doc`` that would load something that is not inline."""
    hits = []
    for pat in NETWORK_PATTERNS:
        hits += [m.group(0) for m in re.finditer(pat, doc, flags=re.IGNORECASE)]
    return hits
