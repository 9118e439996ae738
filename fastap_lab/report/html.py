"""The report as one self-contained HTML page.

Every figure inline (``data:`` URL), CSS and the table-sorting script inline, no reference to
any other file or host (a Content-Security-Policy forbids fetching anything), every text from
the data HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from fastap_lab.report.document import (
    Block,
    BulletList,
    Document,
    Figure,
    Gap,
    Heading,
    Item,
    Paragraph,
    Quote,
    Rule,
    Table,
)
from fastap_lab.report.html_assets import SCRIPT, STYLE
from fastap_lab.report.i18n import translator

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
CODE = re.compile(r"(`[^`]*`)")
STRONG = re.compile(r"\*\*(.+?)\*\*")
EMPHASIS = re.compile(r"(?<!\w)_([^_]+?)_(?!\w)")


def render_html(document: Document) -> str:
    """The page of ``document``; relative figure paths are read from ``document.base``."""
    body = "\n".join(_block(block, document) for block in document.blocks)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{document.lang}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(document.title)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def inline(text: str) -> str:
    """Render the report's inline markup as HTML.

    The report's inline markup (`` `code` ``, ``**bold**``, ``_emphasis_``) as HTML, the
    rest escaped.
    """
    parts = []
    for part in CODE.split(str(text)):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            parts.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            escaped = STRONG.sub(r"<strong>\1</strong>", html.escape(part))
            parts.append(EMPHASIS.sub(r"<em>\1</em>", escaped))
    return "".join(parts)


def _block(block: Block, document: Document) -> str:
    match block:
        case Heading(level, text):
            return f"<h{level}>{inline(text)}</h{level}>"
        case Paragraph(lines):
            return "<p>" + "<br>\n".join(map(inline, lines)) + "</p>"
        case Quote(text):
            return f"<blockquote>{inline(text)}</blockquote>"
        case BulletList(items, lead):
            lead_html = f"<p>{inline(lead)}</p>\n" if lead else ""
            return lead_html + "<ul>\n" + "\n".join(map(_item, items)) + "\n</ul>"
        case Table():
            return _table(block)
        case Figure(path, caption):
            return _figure(document.base / path, caption, document.lang)
        case Rule():
            return "<hr>"
        case Gap():
            return ""
    raise TypeError(f"not a report block: {block!r}")


def _item(item: str | Item) -> str:
    if isinstance(item, str):
        return f"<li>{inline(item)}</li>"
    children = "".join(f"<li>{inline(child)}</li>" for child in item.children)
    return f"<li>{inline(item.text)}<ul>{children}</ul></li>"


def _table(table: Table) -> str:
    attributes = ' class="sortable"' if table.sortable else ""
    caption = f"<caption>{inline(table.caption)}</caption>\n" if table.caption else ""
    head = "".join(f'<th scope="col">{inline(cell)}</th>' for cell in table.header)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    return (
        f'<div class="table"><table{attributes}>\n{caption}<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _figure(path: Path, caption: str, lang: str) -> str:
    """The image as a ``data:`` URL, or a line saying it is missing."""
    if not path.is_file():
        return f'<p class="missing">{inline(translator(lang)("missing_figure", path=path))}</p>'
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{alt}">'
        f"<figcaption>{inline(caption)}</figcaption></figure>"
    )
