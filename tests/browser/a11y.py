"""Accessibility checks in the browser: axe-core (vendored under tests/browser/vendor) on the page as it stands.

`assert_accessible(page)` fails on any serious or critical violation, naming the rule and the elements.
The page's context must bypass the CSP (the `page` fixture does): axe is injected as a script.
"""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

_RUN = """async (blocking) => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter(v => blocking.includes(v.impact)).map(v =>
    `${v.impact} ${v.id}: ${v.help} -> ` + v.nodes.slice(0, 4).map(n => n.target.join(" ")).join(" | "));
}"""


def violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Serious and critical axe violations of the page, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return list(page.evaluate(_RUN, list(BLOCKING)))


def assert_accessible(page, where: str = "") -> None:  # type: ignore[no-untyped-def]
    """No serious or critical axe violation on the page."""
    found = violations(page)
    assert not found, f"{where or page.url}:\n" + "\n".join(found)
