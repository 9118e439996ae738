"""The report as a small document model, and its Markdown rendering.

The sections (:mod:`fastap_lab.report.sections`, ``comparison``, ``gating``) build blocks from
the facts once; :func:`render_markdown` turns them into ``report.md`` and
:func:`fastap_lab.report.html.render_html` into ``report.html``, so both files carry the same
facts. Text in blocks uses the report's Markdown inline markup (`` `code` ``, ``**bold**``,
``_emphasis_``), which both renderers understand. Blocks with ``markdown=False`` exist only in
the HTML (figures and tables that report.md names by file path instead of showing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    """A heading of ``level`` (as many ``#`` in Markdown)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Consecutive lines of one paragraph (Markdown keeps them on separate lines)."""

    lines: tuple[str, ...]

    def __init__(self, *lines: str):
        object.__setattr__(self, "lines", lines)


@dataclass(frozen=True)
class Quote:
    """A block quote of one line."""

    text: str


@dataclass(frozen=True)
class Item:
    """A bullet with sub-bullets ``children``."""

    text: str
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class BulletList:
    """Items (str or :class:`Item` with sub-items); ``lead`` is a line directly above them."""

    items: tuple[str | Item, ...]
    lead: str | None = None


@dataclass(frozen=True)
class Table:
    """Cells in the report's inline markup; ``sortable``: the HTML sorts by a clicked column."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    sortable: bool = False
    markdown: bool = True
    caption: str | None = None  # HTML only


@dataclass(frozen=True)
class Figure:
    """An image file: a path relative to the run folder (as report.md links it) or absolute."""

    path: str | Path
    caption: str
    markdown: bool = True


@dataclass(frozen=True)
class Rule:
    """The line between two sections."""


@dataclass(frozen=True)
class Gap:
    """One more blank line in report.md (kept so that report.md is unchanged); nothing in HTML."""


Block = Heading | Paragraph | Quote | BulletList | Table | Figure | Rule | Gap


@dataclass
class Document:
    """A report: its title, language, the folder its relative figure paths start from, blocks."""

    title: str
    lang: str
    base: Path
    blocks: list[Block] = field(default_factory=list)


def render_markdown(document: Document) -> str:
    """Blocks separated by one blank line (a :class:`Gap` adds one more)."""
    lines: list[str] = []
    for block in document.blocks:
        if isinstance(block, Gap):
            lines.append("")
            continue
        if getattr(block, "markdown", True) is False:
            continue
        if lines:
            lines.append("")
        lines += _markdown(block)
    return "\n".join(lines) + "\n"


def _markdown(block: Block) -> list[str]:
    match block:
        case Heading(level, text):
            return [f"{'#' * level} {text}"]
        case Paragraph(lines):
            return list(lines)
        case Quote(text):
            return [f"> {text}"]
        case BulletList(items, lead):
            return ([lead] if lead else []) + [line for item in items for line in _item(item)]
        case Table(header, rows):
            return [_row(header), "|" + " --- |" * len(header), *map(_row, rows)]
        case Figure(path, caption):
            return [f"![{caption}]({path})"]
        case Rule():
            return ["---"]
    raise TypeError(f"not a report block: {block!r}")


def _item(item: str | Item) -> list[str]:
    if isinstance(item, str):
        return [f"- {item}"]
    return [f"- {item.text}", *(f"  - {child}" for child in item.children)]


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"
