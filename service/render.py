"""Readable terminal output: what was found, the ranked plans, what ran, what waits."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

STATUS_STYLE = {
    "executed": "green",
    "awaiting_approval": "yellow",
    "failed": "red",
    "rejected": "red",
    "skipped": "dim",
}


def _plans_cell(plans: list[dict[str, Any]], limit: int = 3) -> str:
    lines = []
    for i, plan in enumerate(plans[:limit]):
        mark = "▶" if i == 0 else " "
        lines.append(f"{mark} {plan['strategy']} [{plan['tier']}] {plan['score']:.2f}")
    if len(plans) > limit:
        lines.append(f"  … {len(plans) - limit} more")
    return "\n".join(lines)


def _decision_cell(decision: dict[str, Any]) -> str:
    status = decision.get("status", "")
    style = STATUS_STYLE.get(status, "")
    text = f"[{style}]{status}[/]" if style else status
    if decision.get("proposal_id"):
        text += f"\n{decision['proposal_id']}"
    if decision.get("detail") and status in ("failed", "rejected"):
        text += f"\n{decision['detail'][:80]}"
    return text


def cases_table(cases: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_lines=True, expand=False)
    table.add_column("order / case", no_wrap=True)
    table.add_column("found")
    table.add_column("plans (best first)")
    table.add_column("decision")
    table.add_column("order after", no_wrap=True)
    for case in cases:
        after = case["order_after"]
        label = (
            f"{after.get('order_id', '')}\n[dim]{case['id']}[/]"
            if case["id"] != after.get("order_id")
            else case["id"]
        )
        status = after.get("status", "")
        holds = ", ".join(h["kind"] for h in after.get("holds", []))
        after_text = status + (f"\nholds: {holds}" if holds else "")
        if "error" in case:
            table.add_row(label, "[red]not handled[/]", case["error"], "", after_text)
            continue
        if not case["exceptions"]:
            table.add_row(label, "[dim]nothing[/]", "", "", after_text)
            continue
        for i, entry in enumerate(case["exceptions"]):
            table.add_row(
                label if i == 0 else "",
                entry["kind"],
                _plans_cell(entry["plans"]),
                _decision_cell(entry["decision"]),
                after_text if i == 0 else "",
            )
    return table


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['cases']} cases[/] in {summary['seconds']} s · policy {summary['policy']}"
    )
    if summary["kinds"]:
        console.print("found: " + ", ".join(f"{k} {v}" for k, v in summary["kinds"].items()))
    console.print(
        "decisions: " + (", ".join(f"{k} {v}" for k, v in summary["decisions"].items()) or "none")
    )
    unsafe = summary["unsafe_executions"]
    console.print(
        f"L2/L3 executed without approvals: {len(unsafe)}", style="red" if unsafe else "green"
    )
    for line in unsafe:
        console.print(f"  {line}", style="red")
    for error in summary["input_errors"]:
        console.print(f"[red]skipped[/] {error}")
    for error in summary["case_errors"]:
        console.print(f"[red]not handled[/] {error}")
    scores = summary.get("scores")
    if scores:
        table = Table(title=f"scores over {scores['cases_with_expect']} cases with expect")
        for name in ("detection_exact_match", "top_strategy", "tier", "order_after"):
            table.add_column(name.replace("_", " "), justify="right")
        table.add_row(
            *(
                f"{scores[n]:.3f}" if scores[n] is not None else "-"
                for n in ("detection_exact_match", "top_strategy", "tier", "order_after")
            )
        )
        console.print(table)
        for miss in scores["misses"][:20]:
            console.print(f"  [yellow]miss[/] {miss}")
        if len(scores["misses"]) > 20:
            console.print(f"  … {len(scores['misses']) - 20} more misses in the report")


def proposal_view(summary: dict[str, Any], missing: str | None) -> Table:
    """One proposal as an approver sees it: the order, the plan, every action, the binding."""
    plan = summary["plan"]
    table = Table(
        title=f"{summary['proposal_id']} · {summary['strategy']} [{summary['tier']}] "
        f"· {summary['status']}",
        show_header=False,
        show_lines=True,
    )
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("")
    table.add_row(
        "order",
        f"{summary['order_id']} (version {summary['order_version']}) in {summary['world_id']}",
    )
    table.add_row("exception", summary["kind"])
    table.add_row("why", plan.get("rationale", ""))
    table.add_row("money impact", f"{plan.get('cost_usd', '0')} USD")
    table.add_row("evidence", "\n".join(plan.get("evidence", [])))
    table.add_row(
        "actions",
        "\n".join(
            f"{i + 1}. {a['tool']}.{a['op']} {a['args']}"
            for i, a in enumerate(plan.get("actions", []))
        ),
    )
    table.add_row("policy", summary["policy_ref"])
    table.add_row("plan digest", summary["plan_digest"])
    votes = summary.get("votes", [])
    table.add_row(
        "votes",
        "\n".join(
            f"{v['decision']} by {v['by']} ({v['role']})"
            + (f": {v['reason']}" if v.get("reason") else "")
            for v in votes
        )
        or "none yet",
    )
    if summary["status"] == "pending":
        table.add_row("still needed", missing or "nothing: ready to run")
    if summary.get("detail"):
        table.add_row("detail", summary["detail"])
    return table
