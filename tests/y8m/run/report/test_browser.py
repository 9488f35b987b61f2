"""The report page in a real headless browser: no console errors, every image drawn, sorting."""

import os

import pytest

from tests.y8m.run.report.browser import INSTALL, find_browser, open_page
from tests.y8m.run.report.planted import two_stores
from y8m.run import rundir
from y8m.run.report.build import report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser_path():
    path = find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have a headless Chromium: {INSTALL}")
        pytest.skip(f"no headless Chromium: {INSTALL}")
    pytest.importorskip("playwright", reason=f"no Playwright: {INSTALL}")
    return path


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    data = two_stores(folder)
    run = folder / "runs" / "a"
    os.makedirs(run)
    for step in range(1, 6):
        rundir.append_history(str(run), {"step": step, "loss": 1 / step, "learning_rate": 0.01})
    rundir.append_history(str(run), {"step": 5, "validation_gap": 0.3})
    out = report(stores=str(folder / "stores" / "*.parquet"), runs=str(folder / "runs" / "*"),
                 vocabulary=data["vocabulary"], output_dir=str(folder / "out"), progress=False)  # fmt: skip
    return out["index"]


def _column(page, table: str, header: str) -> list[str]:
    return page.eval_on_selector(
        f"#{table}",
        """(t, header) => {
            const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim() === header);
            return Array.from(t.tBodies[0].rows).map(r => r.cells[i].textContent);
        }""",
        header,
    )


def test_the_page_loads_draws_every_image_and_sorts(browser_path, page_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, errors = open_page(p, browser_path, page_path)
        try:
            sizes = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
            )
            assert len(sizes) == 5  # verticals, long tail, scatter, calibration, curves
            assert all(done and w > 0 and h > 0 for done, w, h in sizes), sizes

            names = _column(page, "classes-table", "name")
            assert names[:3] == ["class 0", "class 1", "class 2"]  # class order as written
            page.click("#classes-table th:text-is('ap:strong')")
            ap = [float(x) for x in _column(page, "classes-table", "ap:strong")]
            assert ap == sorted(ap) and ap != [float(x) for x in sorted(ap, reverse=True)]
            page.click("#classes-table th:text-is('ap:strong')")
            ap = [float(x) for x in _column(page, "classes-table", "ap:strong")]
            assert ap == sorted(ap, reverse=True)
            page.click("#classes-table th:text-is('name')")
            names = _column(page, "classes-table", "name")
            assert names == sorted(names, key=str.lower)
            assert errors == []
        finally:
            browser.close()
