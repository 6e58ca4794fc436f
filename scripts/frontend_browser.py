"""Drive ComfyUI's real frontend in headless Chromium (Debian's ``chromium`` through Playwright's Python API).

Used by the frontend tests and by ``scripts/render_workflow_thumbnails.py``. No browser is downloaded:
Playwright launches the system Chromium (``$CHROMIUM`` or ``/usr/bin/chromium``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: settings for a quiet canvas: no first-run template browser, no missing-models dialog over screenshots
QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.ShowMissingModelsWarning": False,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
}


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    return path if os.path.exists(path) else None


@dataclass
class PageLog:
    """Console messages, page errors and failed responses seen by a page."""

    console: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def pack_errors(self, pack: str = "cascadev") -> list[str]:
        """Errors that come from this pack (its JS, its routes, its docs), not from the offline machine."""
        errs = [
            text
            for kind, text in self.console
            if kind in ("error", "pageerror") and pack in text.lower() and not _offline_noise(text)
        ]
        errs += [f"{status} {url}" for status, url in self.failed if pack in url.lower()]
        return errs


def _offline_noise(text: str) -> bool:
    """The frontend asks the public node registry about every node type; this machine is offline."""
    return "Content Security Policy" in text and "https://" in text


@contextlib.contextmanager
def comfy_page(server, settings: dict | None = None, viewport=(1600, 1000)) -> Iterator[tuple[object, PageLog]]:
    """A Playwright page on ``server``'s frontend, loaded and ready (``window.app.graph`` exists)."""
    from playwright.sync_api import sync_playwright

    for key, value in {**QUIET_SETTINGS, **(settings or {})}.items():
        server.post(f"/settings/{key}", value)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        # a fresh profile per run: Playwright's persistent context is how it takes a --user-data-dir
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
        )  # fmt: skip
        try:
            page = browser.new_page()
            log = PageLog()
            page.on("console", lambda m: log.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: log.console.append(("pageerror", str(e))))
            page.on("response", lambda r: r.status >= 400 and log.failed.append((r.status, r.url)))
            page.goto(server.url)
            page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            yield page, log
        finally:
            browser.close()


def load_workflow(page, workflow: dict) -> list[dict]:
    """Load a UI-format workflow into the canvas; return its nodes as the frontend sees them."""
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", json.loads(json.dumps(workflow)))
    page.wait_for_timeout(500)
    return page.evaluate(
        """() => window.app.graph._nodes.map(n => ({
            id: n.id, type: n.type, registered: !!LiteGraph.registered_node_types[n.type],
            errors: !!n.has_errors, widgets: (n.widgets || []).map(w => w.name)}))"""
    )
