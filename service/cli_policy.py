"""`exdesk policy`: policies as a product. This module holds `whatif` (test a policy file on
the decisions recorded over the last N days); the policy versions' commands join the same
group."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import ExdeskError
from service.cli_audit import opened_log
from service.cli_common import DataDir, fail, out
from service.policy_whatif import DEFAULT_DAYS, Summary, whatif_on_history
from service.render import safe
from service.wiring import load_policy

policy_app = typer.Typer(no_args_is_help=True, help="Policies: test a policy on history.")

LIST_LIMIT = 100


@policy_app.command("whatif")
def policy_whatif(
    file: Annotated[Path, typer.Argument(help="The candidate policy file (TOML).")],
    days: Annotated[
        int, typer.Option("--days", help="How many days of recorded decisions to replay.")
    ] = DEFAULT_DAYS,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """What this policy would have changed in the decisions of the last N days: decisions
    whose strategy or tier changes, money moving from L1 to L2, approvals added, the orders.
    Derived from the audit log's records; nothing is run, nothing is written."""
    try:
        policy = load_policy(file)
    except ExdeskError as error:
        raise fail(str(error)) from error
    with opened_log(data_dir) as opened:
        try:
            summary = whatif_on_history(
                opened.log.entries(), opened.log.clear_values, policy, days=days
            )
        except ExdeskError as error:
            raise fail(str(error)) from error
    if as_json:
        sys.stdout.write(json.dumps(summary.as_json(), indent=2, ensure_ascii=False) + "\n")
        return
    print_summary(summary)


def print_summary(summary: Summary) -> None:
    out.print(
        f"under {safe(summary.policy)}, of {summary.decisions} decisions since "
        f"{safe(summary.since)} ({summary.days} days), {summary.changed} would change"
    )
    out.print(
        f"  {summary.strategy_changed} change strategy, {summary.tier_changed} change tier, "
        f"{summary.new_waits} would wait for approval where they ran at once"
    )
    out.print(f"  approvals: {summary.approvals_added} added, {summary.approvals_removed} removed")
    l1_l2 = summary.tier_moves.get("L1→L2", {"decisions": 0, "orders": 0})
    out.print(
        f"  L1→L2: {summary.moved_usd('L1→L2')} USD of orders would wait for approval "
        f"({l1_l2['orders']} orders, {l1_l2['decisions']} decisions)"
    )
    for way, move in summary.tier_moves.items():
        if way != "L1→L2":
            out.print(
                f"  {way}: {move['orders_usd']} USD ({move['orders']} orders, "
                f"{move['decisions']} decisions)"
            )
    for decision in summary.decisions_changed[:LIST_LIMIT]:
        moves = "; ".join(
            f"{safe(m.kind)} {safe(m.strategy_before)} {m.tier_before} → "
            f"{safe(m.strategy_after)} {m.tier_after}"
            for m in decision.moves
        )
        if decision.detection is not None:
            before, after = decision.detection
            found = f"found {safe(', '.join(before))} → {safe(', '.join(after))}"
            moves = f"{found}; {moves}" if moves else found
        out.print(
            f"  order {safe(decision.order_id)} (entry {decision.seq}, "
            f"{decision.order_usd} USD): {moves}"
        )
    if len(summary.decisions_changed) > LIST_LIMIT:
        more = len(summary.decisions_changed) - LIST_LIMIT
        out.print(f"  … and {more} more (--json lists them all)")
    for skipped in summary.not_replayable[:20]:
        out.print(f"  not replayed: entry {skipped['seq']} {safe(skipped['why'])}")
