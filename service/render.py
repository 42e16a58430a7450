"""Readable terminal output: what was found, the ranked plans, what ran, what waits.

Everything that came from an order, a file or a person (ids, names, reasons, details,
rationales, action arguments, error messages that quote them) is untrusted: it goes through
``safe`` before it meets Rich markup, so it is shown as the text it is. A ``[bold]`` in an
order id stays ``[bold]``, an escape byte is shown as ``\\x1b`` and never reaches the
terminal, and a right-to-left override cannot reorder what an approver reads. Only
exdesk's own words (statuses, kinds, the labels) carry styles. Cells and lines are built as
``Text`` from markup with emoji codes off, so ``:warning:`` in a name stays text as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from domain.models import Action, Proposal, ProposalStatus, Vote

STATUS_STYLE = {
    "executed": "green",
    "awaiting_approval": "yellow",
    "failed": "red",
    "rejected": "red",
    "skipped": "dim",
}

# Characters that would act on the terminal, or hide or reorder text, instead of showing:
# C0 controls, DEL, C1 controls, bidi embeddings, overrides and isolates (and the Arabic
# letter mark), zero-width characters and direction marks, line and paragraph separators,
# and the byte order mark / zero-width no-break space.
_HIDDEN = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    *range(0x200B, 0x2010),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0xFEFF,
)


_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _visible(code: int) -> str:
    if code in _SHORT:
        return _SHORT[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_SHOW = {code: _visible(code) for code in _HIDDEN}
_SHOW_KEEP_NEWLINES = {code: text for code, text in _SHOW.items() if code != 0x0A}


def safe(value: object, keep_newlines: bool = False) -> str:
    """``value`` as text to put inside Rich markup: shown as written, never acted on.

    First every character that would act on the terminal or hide or reorder text (controls,
    DEL, C1, bidi overrides and isolates, zero-width characters, U+FEFF) is replaced by a
    visible escape such as ``\\x1b`` or ``\\u202e`` (and a final backslash by ``\\x5c``, which
    would otherwise escape the markup that follows); then Rich markup is escaped. With
    ``keep_newlines`` a newline (and CRLF, read as one) stays a line break, for a cell that
    shows multi-line text such as a street address.
    """
    text = value if isinstance(value, str) else str(value)
    if keep_newlines:
        text = text.replace("\r\n", "\n").translate(_SHOW_KEEP_NEWLINES)
    else:
        text = text.translate(_SHOW)
    if text.endswith("\\"):
        # A backslash at the end would pair up with the tag the caller puts next ("[/]"):
        # shown as \x5c it means the same wherever the text lands.
        text = text[:-1] + "\\x5c"
    return escape(text)


def markup(text: str) -> Text:
    """exdesk's own markup (with untrusted parts passed through ``safe``) as ``Text``, with
    emoji codes left as text and no highlighting."""
    return Text.from_markup(text, emoji=False)


def print_markup(console: Console, text: str, style: str | None = None) -> None:
    """Print a line of exdesk's markup whose untrusted parts went through ``safe``, e.g.
    ``print_markup(err, f"[red]skipped[/] {safe(error)}")``."""
    line = markup(text)
    if style:
        line.stylize(style)
    console.print(line)


def _plans_cell(plans: list[dict[str, Any]], limit: int = 3) -> Text:
    lines = []
    for i, plan in enumerate(plans[:limit]):
        mark = "▶" if i == 0 else " "
        lines.append(
            f"{mark} {safe(plan['strategy'])} {safe('[' + str(plan['tier']) + ']')} "
            f"{float(plan['score']):.2f}"
        )
    if len(plans) > limit:
        lines.append(f"  … {len(plans) - limit} more")
    return markup("\n".join(lines))


def _decision_cell(decision: dict[str, Any]) -> Text:
    status = str(decision.get("status", ""))
    style = STATUS_STYLE.get(status, "")
    text = f"[{style}]{safe(status)}[/]" if style else safe(status)
    if decision.get("proposal_id"):
        text += f"\n{safe(decision['proposal_id'])}"
    if decision.get("detail") and status in ("failed", "rejected"):
        text += f"\n{safe(str(decision['detail'])[:80])}"
    return markup(text)


def cases_table(cases: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=markup(safe(title)), show_lines=True, expand=False)
    table.add_column("order / case", no_wrap=True)
    table.add_column("found")
    table.add_column("plans (best first)")
    table.add_column("decision")
    table.add_column("order after", no_wrap=True)
    for case in cases:
        after = case["order_after"]
        label = markup(
            f"{safe(after.get('order_id', ''))}\n[dim]{safe(case['id'])}[/]"
            if case["id"] != after.get("order_id")
            else safe(case["id"])
        )
        status = safe(after.get("status", ""))
        holds = ", ".join(safe(h.get("kind", "")) for h in after.get("holds", []))
        after_text = markup(status + (f"\nholds: {holds}" if holds else ""))
        if "error" in case:
            table.add_row(
                label, markup("[red]not handled[/]"), markup(safe(case["error"])), "", after_text
            )
            continue
        if not case["exceptions"]:
            table.add_row(label, markup("[dim]nothing[/]"), "", "", after_text)
            continue
        for i, entry in enumerate(case["exceptions"]):
            table.add_row(
                label if i == 0 else "",
                markup(safe(entry["kind"])),
                _plans_cell(entry["plans"]),
                _decision_cell(entry["decision"]),
                after_text if i == 0 else "",
            )
    return table


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{safe(k)} {safe(v)}" for k, v in counts.items())


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    print_markup(
        console,
        f"[bold]{safe(summary['cases'])} cases[/] in {safe(summary['seconds'])} s · "
        f"policy {safe(summary['policy'])}",
    )
    if summary["kinds"]:
        print_markup(console, "found: " + _counts(summary["kinds"]))
    print_markup(console, "decisions: " + (_counts(summary["decisions"]) or "none"))
    unsafe = summary["unsafe_executions"]
    print_markup(
        console,
        f"L2/L3 executed without approvals: {len(unsafe)}",
        style="red" if unsafe else "green",
    )
    for line in unsafe:
        print_markup(console, f"  {safe(line)}", style="red")
    model = summary.get("model")
    if model:  # contract §8: what the model was asked and what came of it
        print_markup(
            console,
            f"model {safe(model['name'])}: {safe(model['calls'])} calls, "
            f"{safe(model['tokens'])} tokens; readings: {_counts(model['readings']) or 'none'}"
            + (f"; failures: {_counts(model['failures'])}" if model["failures"] else ""),
        )
    for error in summary["input_errors"]:
        print_markup(console, f"[red]skipped[/] {safe(error)}")
    for error in summary["case_errors"]:
        print_markup(console, f"[red]not handled[/] {safe(error)}")
    scores = summary.get("scores")
    if scores:
        table = Table(
            title=markup(f"scores over {safe(scores['cases_with_expect'])} cases with expect")
        )
        for name in ("detection_exact_match", "top_strategy", "tier", "order_after"):
            table.add_column(name.replace("_", " "), justify="right")
        table.add_row(
            *(
                f"{float(scores[n]):.3f}" if scores[n] is not None else "-"
                for n in ("detection_exact_match", "top_strategy", "tier", "order_after")
            )
        )
        console.print(table)
        for miss in scores["misses"][:20]:
            print_markup(console, f"  [yellow]miss[/] {safe(miss)}")
        if len(scores["misses"]) > 20:
            print_markup(console, f"  … {len(scores['misses']) - 20} more misses in the report")


def _action_line(number: int, action: Action) -> str:
    args = json.dumps(action.args, ensure_ascii=False, sort_keys=True, default=str)
    return safe(f"{number}. {action.tool}.{action.op} {args}")


def _vote_line(vote: Vote, plan_digest: str) -> str:
    # A reason keeps no line breaks: one could otherwise forge another vote's line.
    reason = f": {vote.reason}" if vote.reason else ""
    line = safe(f"{vote.decision} by {vote.by} ({vote.role}){reason}")
    if vote.plan_digest != plan_digest:
        line = f"[dim]{line} (for an earlier plan; does not count)[/]"
    return line


def _case_line(case_id: str, case: Mapping[str, Any] | None) -> str:
    if case is None:
        return safe(case_id)
    ended = "succeeded" if case["success"] else "failed"
    note = f" (later: {case['note']})" if case.get("note") else ""
    return safe(f"{case_id} · {case['strategy']} · {ended}: {case['summary']}{note}")


def proposal_view(
    proposal: Proposal,
    votes: Sequence[Vote],
    missing: str | None,
    digest: str | None = None,
    cited: Sequence[Mapping[str, Any]] = (),
) -> Table:
    """One proposal as an approver sees it: the order, the plan, every action, the past cases
    it cites (as the case memory holds them now), the binding, the votes (those given for
    another digest of the plan marked as not counting), and what is still needed."""
    plan = proposal.plan
    table = Table(
        title=markup(
            safe(
                f"{proposal.proposal_id} · {proposal.strategy.value} [{proposal.tier.value}] "
                f"· {proposal.status.value}"
            )
        ),
        show_header=False,
        show_lines=True,
    )
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("")

    def row(label: str, value: str) -> None:
        table.add_row(label, markup(value))

    row(
        "order",
        f"{safe(proposal.order_id)} (version {proposal.order_version}) "
        f"in {safe(proposal.world_id)}",
    )
    row("exception", safe(proposal.kind.value))
    row("why", safe(plan.rationale))
    row("money impact", f"{safe(plan.cost_usd)} USD")
    row("evidence", "\n".join(safe(e) for e in plan.evidence))
    if plan.similar_cases:
        found = {str(c["case_id"]): c for c in cited}
        row("past cases", "\n".join(_case_line(i, found.get(i)) for i in plan.similar_cases))
    row("actions", "\n".join(_action_line(i + 1, a) for i, a in enumerate(plan.actions)))
    row("policy", safe(proposal.policy_ref))
    row("plan digest", safe(proposal.plan_digest))
    if digest is not None:
        row("approve with", f"--digest {safe(digest)}  (plan · order version · policy)")
    if proposal.deadline is not None:
        row("deadline", safe(proposal.deadline.isoformat()))
    row(
        "votes",
        "\n".join(_vote_line(v, proposal.plan_digest) for v in votes) or "none yet",
    )
    if proposal.status is ProposalStatus.PENDING:
        row("still needed", safe(missing) if missing else "nothing: ready to run")
    if proposal.detail:
        row("detail", safe(proposal.detail))
    return table
