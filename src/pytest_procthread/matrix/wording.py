"""The words of a cell and of the legend, the same in the Markdown table and the HTML page.

Every distinction the page makes with colour is also made here with words, so that a table
printed in black and white, read aloud, or pasted as Markdown says the same: above all,
a refutation the expectations foresaw is told apart from one they did not.
"""

from __future__ import annotations

from typing import Any

VERDICT_WORD = {"holds": "holds", "refuted": "refuted", "inconclusive": "inconclusive",
                "unsupported": "unsupported", "error": "ERROR", "not run": "not run"}

# (tone, what a reader is told it means), in the legend's order.
LEGEND = (
    ("holds", "holds: the check confirmed the claim"),
    ("refuted", "refuted, as expected: conformance/expectations.toml foresaw it, with the reason"),
    ("inconclusive", "inconclusive, as expected: the measurement could not decide"),
    ("unsupported", "unsupported: this platform cannot run the check"),
    ("unexpected", "UNEXPECTED: a verdict the expectations do not allow; look here first"),
    ("not-run", "not run: no check of the claim ran"),
)


def tone(cell: dict[str, Any]) -> str:
    """The class of a cell: what its colour stands for."""
    if cell["unexpected"]:
        return "unexpected"
    verdict = str(cell["verdict"])
    if verdict.startswith("mixed"):
        return "mixed"
    return verdict.replace(" ", "-")


def verdict_text(cell: dict[str, Any]) -> str:
    """"holds 3.5x [3.1-3.9]", "refuted (expected)", "UNEXPECTED refuted (expected holds)"."""
    text = VERDICT_WORD.get(cell["verdict"], str(cell["verdict"]))
    if cell["figure"]:
        text += f" {cell['figure']}"
    if cell["unexpected"]:
        wanted = f" (expected {cell['expected']})" if cell["expected"] else ""
        return f"UNEXPECTED {text}{wanted}"
    if cell["verdict"] in ("refuted", "inconclusive"):
        text += " (expected)"
    return text


def scope_text(cell: dict[str, Any]) -> str:
    """Which start methods the cell's checks ran under, said only where it is not obvious."""
    scope = str(cell["scope"])
    return "" if len(cell["start_methods"]) == 1 and scope == cell["start_methods"][0] else scope
