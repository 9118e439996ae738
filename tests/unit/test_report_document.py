"""The report's document model as Markdown and as a self-contained HTML page (offline, escaped,
figures inline); the page in a real browser: tests/integration/test_report_html.py."""

from __future__ import annotations

import re

from fastap_lab.report.document import (
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
    render_markdown,
)
from fastap_lab.report.html import render_html

HOSTILE = "<script>alert('x')</script> & \"q\""
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e2"
    "3c6d0000000049454e44ae426082"
)


def hand_made(tmp_path) -> Document:
    (tmp_path / "plot.png").write_bytes(PNG)
    blocks = [
        Heading(1, f"Report {HOSTILE}"),
        Paragraph("line `code <b>` and **bold**", "_note_ of z_std"),
        BulletList(("one", Item("two", ("a", "b"))), lead="lead"),
        Quote("quoted"),
        Table(("Frame", "AP"), ((HOSTILE, "0.5000"), ("f2", "—")), sortable=True),
        Gap(),
        Rule(),
        Figure("plot.png", "Loss curves"),
        Figure(tmp_path / "absent.png", "absent", markdown=False),
        Table(("x",), (("html only",),), markdown=False, caption="only in HTML"),
    ]
    return Document(HOSTILE, "en", tmp_path, blocks)


def test_markdown_of_the_document_model(tmp_path):
    text = render_markdown(hand_made(tmp_path))
    assert text.startswith(f"# Report {HOSTILE}\n\nline `code <b>` and **bold**\n_note_ of z_std\n")
    assert "\nlead\n- one\n- two\n  - a\n  - b\n\n> quoted\n" in text
    assert "| Frame | AP |\n| --- | --- |\n" in text
    assert "| f2 | — |\n\n\n---\n\n![Loss curves](plot.png)\n" in text  # Gap: one more line
    assert "html only" not in text and "absent" not in text


def test_html_is_self_contained_and_escaped(tmp_path):
    page = render_html(hand_made(tmp_path))
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)" in page
    assert "<code>code &lt;b&gt;</code> and <strong>bold</strong>" in page
    assert "<em>note</em> of z_std" in page  # an underscore inside a word is not emphasis
    assert page.count("<script") == 1 and "<script>" in page  # the inline sort script only
    assert not re.search(r"<link|@import|url\(|\b(src|href)=\"(?!data:)", page)
    assert not re.search(r"https?://", page)
    (image,) = re.findall(r'<img src="([^"]+)"', page)
    assert image.startswith("data:image/png;base64,")
    assert "absent.png" in page and 'class="missing"' in page  # a missing figure is named
    assert '<table class="sortable">' in page and "<caption>only in HTML</caption>" in page
    assert "Content-Security-Policy" in page and "default-src &#x27;none&#x27;" not in page
