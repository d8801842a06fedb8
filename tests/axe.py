"""axe-core, the accessibility engine, run inside a page through Playwright.

scripts/axe.sh fetches the pinned npm package's browser bundle into tests/.axe/. The
bundle is evaluated through the DevTools protocol rather than added as a <script>, so
that the pages' own Content-Security-Policy (script-src 'self') applies to them as
served and still lets the check run.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Frame, Page

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / ".axe" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: what the pages and the email promise.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa")

_RUN = """async (tags) => {
    const results = await axe.run(document, {
        runOnly: {type: "tag", values: tags},
        resultTypes: ["violations"],
    });
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({target: n.target, summary: n.failureSummary || ""})),
    }));
}"""


class AxeMissing(RuntimeError):
    """axe-core is not there and cannot be fetched."""


@functools.cache
def axe_source() -> str:
    """Return axe.min.js, fetching the pinned version first when it is not there."""
    if shutil.which("npm") is None and not AXE.is_file():
        raise AxeMissing("npm is needed to fetch axe-core (see scripts/axe.sh)")
    subprocess.run(["bash", str(ROOT / "scripts" / "axe.sh")], check=True, timeout=300, cwd=ROOT)
    return AXE.read_text(encoding="utf-8")


def _inject(frame: Frame) -> None:
    if not frame.evaluate("typeof window.axe !== 'undefined'"):
        frame.evaluate(axe_source() + "\n;void 0")


def violations(page: Page) -> list[str]:
    """Run axe with the WCAG 2 A and AA rules on page (its frames too); return one line
    per failing element: rule, impact, where, and what the rule asks."""
    # axe checks a frame only if it runs inside it too, and the main frame asks them.
    for frame in page.frames:
        _inject(frame)
    found: list[dict[str, Any]] = page.main_frame.evaluate(_RUN, list(TAGS))
    return format_violations(found)


def format_violations(found: list[dict[str, Any]]) -> list[str]:
    """Return axe's violations as readable lines, one per element."""
    lines = []
    for rule in found:
        for node in rule["nodes"]:
            where = " >> ".join(
                " ".join(part) if isinstance(part, list) else str(part) for part in node["target"]
            )
            summary = " ".join(node["summary"].split())
            lines.append(
                f"{rule['id']} [{rule['impact']}] at {where}: {rule['help']}"
                + (f" ({summary[:300]})" if summary else "")
            )
    return lines
