"""Write one benchmark's section of ``benchmarks/RESULTS.md`` (``--write`` in the scripts)."""

from __future__ import annotations

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def write_section(title: str, body: str, path: str = RESULTS) -> None:
    """Replace (or append) the ``## title`` section of a markdown file with ``body``."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start = text.find(f"\n## {title}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + (text[end + 1:] if end >= 0 else "")
        text = text.rstrip("\n") + "\n"
    with open(path, "w") as f:
        f.write(text + f"\n## {title}\n\n{body}\n")

