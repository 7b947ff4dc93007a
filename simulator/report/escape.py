"""Escaping of plan-supplied text (model, hardware, device names) for each output format.

Names come from user files, so a hardware called ``<script>alert(1)</script>`` must appear as those
characters, never as markup. HTML gets jinja2's autoescape; Markdown gets :func:`md_escape` on every
``{{ }}`` by default (see :class:`Raw` for the few trusted fragments); matplotlib labels get
:func:`plot_text` so ``$`` never switches on mathtext.
"""

from __future__ import annotations

import re

__all__ = ["Raw", "md_code_block", "md_escape", "md_finalize", "plot_text"]

# Characters with a meaning inside a line of CommonMark/GFM (emphasis, links, code, tables, math).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


class Raw(str):
    """Markdown the report itself built (image links): :func:`md_finalize` leaves it as is."""


def md_escape(value: object) -> str:
    """Text → Markdown that renders as exactly that text (HTML-significant characters as entities)."""
    text = " ".join(str(value).split())  # a newline would end a table row
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code_block(value: object) -> Raw:
    """A fenced code block showing ``value`` verbatim (Markdown does not interpret HTML inside it)."""
    text = str(value)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Raw(f"{fence}\n{text}\n{fence}")


def md_finalize(value: object) -> object:
    """jinja2 ``finalize`` hook of the Markdown environment: escape everything but :class:`Raw`."""
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value
    return md_escape(value)


def plot_text(value: object) -> str:
    """A label for matplotlib: ``$`` escaped so that it is printed, not parsed as mathtext."""
    return str(value).replace("$", r"\$")
