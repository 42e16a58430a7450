"""Untrusted text is shown as text: no markup, no escape sequences, no hidden characters."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console, RenderableType
from rich.markup import render as render_markup
from rich.segment import Segment

from domain.models import (
    Action,
    Kind,
    Plan,
    Proposal,
    ProposalStatus,
    Strategy,
    Tier,
    Vote,
)
from service.render import cases_table, print_markup, print_summary, proposal_view, safe

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HOSTILE_IDS = ["[bold green]EXECUTED[/bold green]", "[/x]", "\x1b[31mred"]
SHOWN_IDS = ["[bold green]EXECUTED[/bold green]", "[/x]", "\\x1b[31mred"]
VOTER = "[bold]mallory[/bold]\x1b[2J"
REASON = (
    "[red]fine[/red] \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \u202etxt.exe\nforged: approve"
)


def _consoles() -> tuple[Console, Console]:
    """A console that shows styles as ANSI, and one with no colour at all (so any ESC in its
    output came from the input)."""
    ansi = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=250)
    plain = Console(file=io.StringIO(), force_terminal=True, color_system=None, width=250)
    return ansi, plain


def _render(renderable: RenderableType) -> tuple[str, str, list[Segment]]:
    """(text as shown, raw ANSI output, segments)."""
    ansi, plain = _consoles()
    ansi.print(renderable)
    plain.print(renderable)
    record = Console(record=True, width=250, file=io.StringIO())
    record.print(renderable)
    segments = list(ansi.render(renderable))
    raw_plain = plain.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b" not in raw_plain, "an escape byte from the input reached the terminal"
    return record.export_text(), ansi.file.getvalue(), segments  # type: ignore[attr-defined]


def _unstyled(segments: list[Segment], needle: str) -> None:
    """The segments showing ``needle`` carry no style that the text could have asked for."""
    hits = [s for s in segments if needle in s.text]
    assert hits, f"{needle!r} is not shown"
    for seg in hits:
        style = seg.style
        if style is None:
            continue
        assert not style.bold, (needle, style)
        assert style.color is None or style.color.name not in ("green", "red"), (needle, style)
        assert style.link is None, (needle, style)


def _case(order_id: str) -> dict[str, Any]:
    return {
        "id": order_id,
        "kinds": ["stockout"],
        "exceptions": [
            {
                "kind": "stockout",
                "plans": [
                    {"strategy": "backorder", "tier": "L2", "score": 0.9},
                    {"strategy": "cancel_order", "tier": "L3", "score": 0.1},
                ],
                "decision": {
                    "status": "failed",
                    "strategy": "backorder",
                    "tier": "L2",
                    "proposal_id": f"P-{order_id}",
                    "detail": f"tool said [bold]{order_id}[/bold] \x1b[5m",
                },
            }
        ],
        "order_after": {
            "order_id": order_id,
            "status": "on_hold",
            "holds": [{"kind": "[blink]stockout[/blink]"}],
        },
    }


def test_cases_table_shows_hostile_order_ids_as_text() -> None:
    cases = [_case(i) for i in HOSTILE_IDS]
    cases.append({"id": "[/]", "order_after": {"order_id": "\x07\x9b2J"}, "error": "[/x] \x1b"})
    shown, raw, segments = _render(cases_table(cases, "exdesk run · [red]orders[/].jsonl"))
    for text in SHOWN_IDS:
        assert text in shown
        assert f"P-{text}" in shown
    assert "tool said [bold]" in shown
    assert "[blink]stockout[/blink]" in shown
    assert "\\x07\\x9b2J" in shown and "[/x] \\x1b" in shown
    assert "exdesk run · [red]orders[/].jsonl" in shown
    assert "\x1b[31mred" not in raw and "\x1b[5m" not in raw and "\x07" not in raw
    assert "\x9b" not in raw
    _unstyled(segments, "EXECUTED")
    _unstyled(segments, "mred")
    # exdesk's own words keep their style.
    assert any(s.text == "failed" and s.style and s.style.color for s in segments)


def _proposal(**changes: Any) -> Proposal:
    plan = Plan(
        kind=Kind.CUSTOMS_BLOCK,
        strategy=Strategy.CANCEL_ORDER,
        tier=Tier.L3,
        actions=(Action(tool="orders", op="cancel", args={"note": "\x1b[2J[/x]", "n": 1}),),
        cost_usd=Decimal("12.50"),
        rationale="[bold green]EXECUTED[/bold green] already \x1b[31mred",
        evidence=("destination [link=http://evil]IR[/link]", "\u200bzero\u2066width"),
    )
    fields: dict[str, Any] = {
        "proposal_id": "P-1",
        "world_id": "[/x]",
        "order_id": HOSTILE_IDS[0],
        "thread_id": "t",
        "kind": Kind.CUSTOMS_BLOCK,
        "strategy": Strategy.CANCEL_ORDER,
        "tier": Tier.L3,
        "plan": plan,
        "plan_digest": "d" * 64,
        "order_version": 2,
        "policy_ref": "2026-11-22.1@abc",
        "status": ProposalStatus.PENDING,
        "detail": "[/]",
        "created_at": NOW,
    }
    fields.update(changes)
    return Proposal(**fields)


def _vote(by: str, reason: str | None, digest: str = "d" * 64) -> Vote:
    return Vote(
        by=by,
        person=by.casefold(),
        role="supervisor",
        decision="approve",
        reason=reason,
        plan_digest=digest,
        at=NOW,
    )


def test_proposal_view_shows_names_reasons_and_arguments_as_text() -> None:
    votes = [_vote(VOTER, REASON), _vote("[red]old[/red]", None, digest="e" * 64)]
    view = proposal_view(_proposal(), votes, "[bold]1 more[/bold] \x1b[31m")
    shown, raw, segments = _render(view)
    assert "P-1 · cancel_order [L3] · pending" in shown
    assert "[bold green]EXECUTED[/bold green] (version 2) in [/x]" in shown
    assert "[bold green]EXECUTED[/bold green] already \\x1b[31mred" in shown
    assert "12.50 USD" in shown
    assert "destination [link=http://evil]IR[/link]" in shown
    assert "\\u200bzero\\u2066width" in shown
    assert '1. orders.cancel {"n": 1, "note": "\\u001b[2J[/x]"}' in shown
    assert "approve by [bold]mallory[/bold]\\x1b[2J (supervisor): [red]fine[/red]" in shown
    assert "\\u202etxt.exe\\nforged: approve" in shown
    assert "approve by [red]old[/red] (supervisor) (for an earlier plan; does not count)" in shown
    assert "[bold]1 more[/bold] \\x1b[31m" in shown
    for hidden in ("\x1b[2J", "\x1b]8", "\u202e", "\u200b", "\u2066", "\x1b[31m"):
        assert hidden not in raw
    # The reason's newline did not start a line of its own that looks like another vote.
    assert not any(line.lstrip("│ ").startswith("forged") for line in shown.splitlines())
    _unstyled(segments, "EXECUTED")
    _unstyled(segments, "mallory")
    _unstyled(segments, "fine")
    _unstyled(segments, "IR")
    _unstyled(segments, "old")


def test_a_decided_proposal_needs_nothing_more_shown() -> None:
    shown, _, _ = _render(
        proposal_view(_proposal(status=ProposalStatus.EXECUTED, detail=None), [], None)
    )
    assert "· executed" in shown and "none yet" in shown
    assert "still needed" not in shown and "detail" not in shown


def test_print_summary_shows_errors_and_misses_as_text() -> None:
    summary = {
        "cases": 3,
        "seconds": 1.5,
        "policy": "[bold]v1[/bold]",
        "kinds": {"[red]x[/red]": 1},
        "decisions": {"executed": 2},
        "unsafe_executions": ["[/x] \x1b[31m"],
        "input_errors": ["orders.jsonl line 2: order_id '[/x]\x1b[31m': too long"],
        "case_errors": ["[bold green]EXECUTED[/bold green]"],
        "scores": {
            "cases_with_expect": 3,
            "detection_exact_match": 1.0,
            "top_strategy": 0.5,
            "tier": None,
            "order_after": 1.0,
            "misses": ["EX-1: top [/x] \x1b[2J"],
        },
    }
    ansi, plain = _consoles()
    record = Console(record=True, width=250, file=io.StringIO())
    for console in (ansi, plain, record):
        print_summary(console, summary)
    shown = record.export_text()
    raw = ansi.file.getvalue()  # type: ignore[attr-defined]
    assert "3 cases in 1.5 s · policy [bold]v1[/bold]" in shown
    assert "found: [red]x[/red] 1" in shown
    assert "  [/x] \\x1b[31m" in shown
    assert "skipped orders.jsonl line 2: order_id '[/x]\\x1b[31m': too long" in shown
    assert "not handled [bold green]EXECUTED[/bold green]" in shown
    assert "miss EX-1: top [/x] \\x1b[2J" in shown
    assert "\x1b[2J" not in raw
    assert "\x1b" not in plain.file.getvalue()  # type: ignore[attr-defined]


# --- safe ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\x00b\x7fc\x85d\x9b", "a\\x00b\\x7fc\\x85d\\x9b"),
        ("tab\tnew\nret\r", "tab\\tnew\\nret\\r"),
        ("\u202a\u202b\u202c\u202d\u202e", "\\u202a\\u202b\\u202c\\u202d\\u202e"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200b\u200c\u200d\u200e\u200f\ufeff", "\\u200b\\u200c\\u200d\\u200e\\u200f\\ufeff"),
        ("上海仓 café ÄÖ — ok", "上海仓 café ÄÖ — ok"),
        (42, "42"),
    ],
)
def test_safe_shows_hidden_characters(value: object, expected: str) -> None:
    assert safe(value) == expected
    assert render_markup(safe(value)).plain == expected


@pytest.mark.parametrize(
    "value",
    [
        "[bold green]EXECUTED[/bold green]",
        "[/x]",
        "[/]",
        "\\[bold]x[/bold]",
        "\\\\[bold]x",
        "[link=http://evil]x[/link]",
        "[@click=app.quit]x[/]",
        "ends with \\",
        "ends with \\\\\\",
        "\x1b[bold]",
        ":warning: :smile:",
    ],
)
def test_safe_text_survives_markup_as_written(value: str) -> None:
    shown = value.replace("\x1b", "\\x1b")
    if shown.endswith("\\"):
        shown = shown[:-1] + "\\x5c"
    for wrapped in (safe(value), f"[red]{safe(value)}[/]", f"[dim]{safe(value)}[/dim] after"):
        console = Console(record=True, width=200, file=io.StringIO())
        print_markup(console, wrapped)
        assert console.export_text() == shown + (" after" if "after" in wrapped else "") + "\n"
    text = render_markup(f"[red]{safe(value)}[/] tail", emoji=False)
    assert text.plain == shown + " tail"
    assert [(span.start, span.end, span.style) for span in text.spans] == [(0, len(shown), "red")]


def test_safe_may_keep_newlines_for_multi_line_cells() -> None:
    address = "Keizersgracht 1\r\n2nd floor\n\x1b[2J"
    assert safe(address, keep_newlines=True) == "Keizersgracht 1\n2nd floor\n\\x1b[2J"
    assert safe(address) == "Keizersgracht 1\\r\\n2nd floor\\n\\x1b[2J"
