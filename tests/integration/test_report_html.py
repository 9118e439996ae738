"""``python -m fastap_lab.report RUN --html``: the page of a real run (the same blocks as
report.md; the document model alone: tests/unit/test_report_document.py) and in headless Chromium (loads without console error or request
to anything but itself, not blank, headline numbers shown, the per-query table sorts).

Chromium (Debian package ``chromium``) is found on PATH or in $CHROMIUM. Without it the browser
test is skipped locally and FAILS under CI (CI=true, as .ci/run sets), which installs it."""

from __future__ import annotations

import io
import json
import os
import re

import pytest

from fastap_lab.report.__main__ import main as report_main
from fastap_lab.report.collect import newest_inference
from fastap_lab.report.sections import f4
from tests.integration.browser import Browser, find_chromium
from tests.integration.report_runs import tiny_runs


@pytest.fixture(scope="module")
def pages(tmp_path_factory, cache_dir):
    """report.html and report.ja.html of the tiny FastAP run against its SimSiam parent."""
    simsiam, fastap = tiny_runs(tmp_path_factory, cache_dir)
    for lang in ("en", "ja"):
        report_main([str(fastap), "--baseline", str(simsiam), "--lang", lang, "--html"])
    return fastap


def test_html_has_the_facts_of_report_md(pages):
    page = (pages / "report.html").read_text()
    markdown = (pages / "report.md").read_text()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE):
        assert re.sub(r"`([^`]*)`", r"<code>\1</code>", heading) in page, heading
    for figure in ("report_loss.png", "retrieval_grid.png", "diagnostics.png"):
        assert figure not in re.findall(r'src="([^"]+)"', page)
    assert page.count('<img src="data:image/png;base64,') == 3  # loss, retrieval grid, diagnostics
    rows = (newest_inference(pages) / "per_query.csv").read_text().splitlines()
    assert page.count("<tr>") >= len(rows) - 1  # every query in the per-query table
    assert '<html lang="ja">' in (pages / "report.ja.html").read_text()


def chromium_or_skip() -> str:
    path = find_chromium()
    if path is None:
        message = "chromium not found (apt-get install chromium, or set $CHROMIUM)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message}: CI must run the browser test")
        pytest.skip(message)
    return path


def test_report_in_headless_chromium(pages):
    from PIL import Image, ImageStat

    this = json.loads((newest_inference(pages) / "metrics.json").read_text())["metrics"]
    with Browser(chromium_or_skip()) as browser:
        bad = browser.open(
            "data:text/html,<img src='http://example.invalid/x.png'><script>no()</script>"
        )
        assert bad.errors and "http://example.invalid/x.png" in bad.requests  # the checks see
        for name, words in (("report.html", "Evaluation metrics"), ("report.ja.html", "評価指標")):
            page = browser.open((pages / name).as_uri())
            assert page.errors == [], page.errors
            assert [u for u in page.requests if not u.startswith(("data:", "file:"))] == []
            text = browser.evaluate("document.body.innerText")
            assert words in text and f4(this["mAP"]) in text and "beats raw pixels" in text
        shot = Image.open(io.BytesIO(browser.screenshot())).convert("L")
        assert shot.height > 1000 and ImageStat.Stat(shot).var[0] > 100, "blank screenshot"
        assert_sorts(browser)


def assert_sorts(browser: Browser) -> None:
    """Clicking the AP heading sorts ascending, clicking again descending; dashes stay last."""
    table = "document.querySelector('table.sortable')"
    column = browser.evaluate(
        f"Array.from({table}.tHead.rows[0].cells).findIndex(c => c.textContent === 'AP')"
    )
    values = f"Array.from({table}.tBodies[0].rows).map(r => r.cells[{column}].textContent)"
    for order in ("ascending", "descending"):
        browser.evaluate(f"{table}.tHead.rows[0].cells[{column}].click()")
        cells = browser.evaluate(values)
        numbers = [float(c) for c in cells if c != "—"]
        assert cells[: len(numbers)] == [f4(n) for n in numbers], cells  # dashes last
        assert numbers == sorted(numbers, reverse=order == "descending"), (order, numbers)
        heading = browser.evaluate(f"{table}.tHead.rows[0].cells[{column}].ariaSort")
        assert heading == order
