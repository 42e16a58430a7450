"""`exdesk policy`: policies as a product. The versions in the store and which one is in
force (list, show, diff, import, activate, rollback, shadow, rollout, kill: ``service.policies``),
and `whatif` (test a policy file on the decisions recorded over the last N days)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import ExdeskError
from domain.models import User
from service import policies
from service.cli_audit import opened_log
from service.cli_common import DataDir, fail, opened, out
from service.cli_review import Token
from service.people import authenticate
from service.policy_whatif import DEFAULT_DAYS, Summary, whatif_on_history
from service.render import safe
from service.wiring import Exdesk, load_policy, read_policy
from store.policies import PolicyState

policy_app = typer.Typer(
    no_args_is_help=True,
    help="Policy versions: import a draft, compare, test it on history, activate (a "
    "supervisor's token), roll back, run a candidate in shadow or for a share of the orders, "
    "and stop it at once.",
)

LIST_LIMIT = 100
Comment = Annotated[str | None, typer.Option("--comment", help="Why (kept with the change).")]
Version = Annotated[str, typer.Argument(help="A version number, or a ref as decisions record it.")]


@policy_app.command("whatif")
def policy_whatif(
    file: Annotated[Path, typer.Argument(help="The candidate policy file (TOML).")],
    days: Annotated[
        int, typer.Option("--days", help="How many days of recorded decisions to replay.")
    ] = DEFAULT_DAYS,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Replay only the most recent N decisions of those days."),
    ] = None,
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
                opened.log.entries(), opened.log.clear_values, policy, days=days, limit=limit
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
    if summary.in_window > summary.decisions:
        out.print(
            f"  (the most recent {summary.decisions} of the {summary.in_window} decisions "
            "of those days: --limit)"
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


def _who(desk: Exdesk, token: str | None) -> User | None:
    token = token or desk.settings.token
    return authenticate(desk, token) if token else None


def _said(desk: Exdesk, state: PolicyState) -> None:
    active = desk.policy_store.get(state.active)
    line = f"policy version {active.id} ({safe(active.ref)}) is active"
    if state.candidate is not None:
        candidate = desk.policy_store.get(state.candidate)
        share = "in shadow" if state.mode == "shadow" else f"for {state.percent}% of orders"
        line += f"; version {candidate.id} ({safe(candidate.ref)}) runs {share}"
    out.print(line)


def _changed(desk: Exdesk, state: PolicyState) -> None:
    """What a change put in force, and what became of the open proposals it touched."""
    _said(desk, state)
    entry = policies.change_entry(desk, state) or {}
    kept, void = entry.get("proposals_rebound", 0), entry.get("proposals_void", 0)
    if kept or void:
        out.print(
            f"open proposals decided again under the version now deciding their orders: "
            f"{kept} kept (it decides the same; their votes stand), {void} void (it decides "
            "differently; each says how: `exdesk review list --status void`)"
        )


@policy_app.command("list")
def policy_list(data_dir: DataDir = None) -> None:
    """Every stored version, oldest first, and which is active (or a candidate)."""
    with opened(data_dir) as desk:
        state = desk.policies.state
        for version in desk.policy_store.list():
            row = policies.describe(desk, version, state)
            status = row["status"] or ""
            if status == "rollout":
                status = f"rollout {row['percent']}%"
            out.print(
                f"{version.id:>4}  {safe(version.ref):<28} {status:<13} "
                f"{version.created_at:%Y-%m-%d %H:%M}  {safe(version.author):<20} "
                f"{safe(version.comment or '')}"
            )
        _said(desk, state)


@policy_app.command("show")
def policy_show(
    version: Annotated[
        str | None, typer.Argument(help="A version number or ref (default: the active one).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """A version's text, as it was imported."""
    with opened(data_dir) as desk:
        found = policies.resolve(desk, version)
        out.print(
            f"# version {found.id} · {safe(found.ref)} · by {safe(found.author)} · "
            f"{found.created_at:%Y-%m-%d %H:%M}"
        )
        out.print(safe(found.content.rstrip("\n"), keep_newlines=True))


@policy_app.command("diff")
def policy_diff(
    a: Version,
    b: Version,
    text: Annotated[bool, typer.Option("--text", help="The text's unified diff too.")] = False,
    data_dir: DataDir = None,
) -> None:
    """What changes from version A to version B, field by field."""
    with opened(data_dir) as desk:
        result = policies.diff(desk, a, b)
        for change in result["fields"]:
            out.print(
                f"{safe(change['field'])}: {safe(change['before'])} -> {safe(change['after'])}"
            )
        if text and result["text"]:
            out.print(safe(result["text"].rstrip("\n"), keep_newlines=True))
        count = len(result["fields"])
        out.print(f"{count} field(s) differ between version {result['from']} and {result['to']}")


@policy_app.command("import")
def policy_import(
    file: Annotated[Path, typer.Argument(help="A policy file (TOML, as domain/policy.toml).")],
    comment: Comment = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Store a policy file as a new version (a draft: nothing changes until a supervisor
    activates it). Needs an approver's or supervisor's token. Prints the version's number
    alone on the last line."""
    with opened(data_dir) as desk:
        given = read_policy(file)
        done = policies.import_policy(
            desk, given.text, str(file), by=_who(desk, token), comment=comment
        )
        v = done.version
        if done.new:
            out.print(f"stored as policy version {v.id} ({safe(v.ref)}); not active yet")
        else:
            out.print(f"the same content is stored already, as version {v.id} ({safe(v.ref)})")
    sys.stdout.write(f"{v.id}\n")


@policy_app.command("activate")
def policy_activate(
    version: Version, comment: Comment = None, token: Token = None, data_dir: DataDir = None
) -> None:
    """Put a version in force for every order from now on (a supervisor's token); running
    exdesk processes take it up at their next order."""
    with opened(data_dir) as desk:
        number = policies.resolve(desk, version).id
        state = policies.activate(desk, number, by=_who(desk, token), comment=comment)
        _changed(desk, state)


@policy_app.command("rollback")
def policy_rollback(comment: Comment = None, token: Token = None, data_dir: DataDir = None) -> None:
    """Put back the version that was active before the current one (a supervisor's token)."""
    with opened(data_dir) as desk:
        state = policies.rollback(desk, by=_who(desk, token), comment=comment)
        _changed(desk, state)


@policy_app.command("shadow")
def policy_shadow(
    version: Version, comment: Comment = None, token: Token = None, data_dir: DataDir = None
) -> None:
    """Run a version in shadow: it decides every order beside the active one; its decisions
    are recorded and compared, never executed (a supervisor's token)."""
    with opened(data_dir) as desk:
        number = policies.resolve(desk, version).id
        state = policies.set_candidate(
            desk, number, mode="shadow", by=_who(desk, token), comment=comment
        )
        _changed(desk, state)


@policy_app.command("rollout")
def policy_rollout(
    version: Version,
    percent: Annotated[int, typer.Option("--percent", help="Share of orders: 5, 25, 100...")],
    comment: Comment = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Let a version decide a share of the orders, chosen by a stable hash of the order id
    (an order keeps its version; a larger share only adds orders). A supervisor's token."""
    with opened(data_dir) as desk:
        number = policies.resolve(desk, version).id
        state = policies.set_candidate(
            desk, number, mode="rollout", percent=percent, by=_who(desk, token), comment=comment
        )
        _changed(desk, state)


@policy_app.command("kill")
def policy_kill(comment: Comment = None, token: Token = None, data_dir: DataDir = None) -> None:
    """The kill switch: every order back to the active version at once."""
    with opened(data_dir) as desk:
        state = policies.kill(desk, by=_who(desk, token), comment=comment)
        _changed(desk, state)


@policy_app.command("compare")
def policy_compare(
    version: Version,
    days: Annotated[int, typer.Option("--days", help="How many days of decisions.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """How a version fares beside the active one: the live decisions of each (strategies,
    tiers) and, in shadow, what it would have decided beside each, with the differences."""
    from service.policy_compare import compare

    with opened(data_dir) as desk:
        result = compare(desk, policies.resolve(desk, version), days=days)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    for ref, seen in result["live"].items():
        out.print(
            f"version {seen['version']} ({safe(ref)}) decided {seen['decisions']} orders live: "
            f"tiers {safe(seen['tiers'])}, strategies {safe(seen['strategies'])}"
        )
    shadow = result["shadow"]
    out.print(
        f"in shadow: {shadow['decisions']} orders compared, {shadow['differences']} would be "
        f"decided differently, {shadow['not_compared']} could not be compared"
    )
    for diff in shadow["orders"][:LIST_LIMIT]:
        out.print(
            f"  order {safe(diff['order_id'])}: decided {safe(diff['decided']['top'])}, "
            f"would {safe(diff['would']['top'])}"
        )
