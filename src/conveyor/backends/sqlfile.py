"""Load named SQL blocks from a file beside the backend, once.

A file holds blocks that start with ``-- name: <block>``; the text up to the
next marker is the block. Queries are static text: values travel as bound
parameters, never spliced in.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_MARKER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def load(filename: str) -> dict[str, str]:
    """Return ``{block name: SQL}`` for ``backends/sql/<filename>``."""
    text = resources.files("conveyor.backends.sql").joinpath(filename).read_text("utf-8")
    parts = _MARKER.split(text)
    blocks: dict[str, str] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in blocks:
            raise RuntimeError(f"{filename}: block {name!r} defined twice")
        blocks[name] = body.strip()
    return blocks
