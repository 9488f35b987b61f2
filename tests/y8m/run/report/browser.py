"""A headless Chromium for the page tests: Debian's package driven by Playwright (whose own
browser download is not reachable from the project's machines)."""

import os
import shutil

INSTALL = "apt-get install -y chromium-headless-shell && pip install playwright"
CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser")


def find_browser() -> str | None:
    """The first Chromium on PATH (or $Y8M_CHROMIUM), or None."""
    if os.environ.get("Y8M_CHROMIUM"):
        return os.environ["Y8M_CHROMIUM"]
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def open_page(playwright, browser_path: str, path: str, viewport=(1200, 900)):
    """(browser, page, console errors) with PATH loaded from disk."""
    browser = playwright.chromium.launch(
        executable_path=browser_path, headless=True, args=["--no-sandbox"]
    )
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("file://" + os.path.abspath(path))
    page.wait_for_load_state("load")
    return browser, page, errors
