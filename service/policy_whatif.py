"""Test a policy on history: what a candidate policy would have changed in the decisions
recorded over the last N days.

The decisions are derived again from the inputs the audit log recorded for them (the what-if
replay of ``agent.replay``: no tool, no model), once under the policy each was made under and
once under the candidate. The summary counts the decisions whose top strategy or tier would
change, the approvals the candidate would add, and the money that would move between tiers:
the value of the orders (their lines, in USD at their facts' rate) whose top plan would go,
say, from L1 (runs at once) to L2 (waits for two people). An order decided more than once in
the window counts once for money, by its latest decision; decisions are counted each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agent.replay import ClearValues, Outcome, Run, WhatIf, collect, what_if
from audit.models import AuditEntry
from domain.errors import InputError
from domain.models import Tier
from domain.policy import Policy
from service.replay import checkers

DEFAULT_DAYS = 30
MAX_DAYS = 3660


@dataclass(frozen=True)
class Move:
    """One exception of one decision whose top plan comes out differently."""

    kind: str
    strategy_before: str
    strategy_after: str
    tier_before: str
    tier_after: str
    approvals_before: int
    approvals_after: int
    cost_before_usd: Decimal
    cost_after_usd: Decimal

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["cost_before_usd"] = str(self.cost_before_usd)
        data["cost_after_usd"] = str(self.cost_after_usd)
        return data


@dataclass(frozen=True)
class ChangedDecision:
    order_id: str
    thread_id: str
    seq: int
    at: str
    order_usd: Decimal
    moves: tuple[Move, ...]
    detection: tuple[list[str], list[str]] | None = None  # kinds found before, after

    @property
    def approvals_added(self) -> int:
        return sum(max(0, m.approvals_after - m.approvals_before) for m in self.moves)

    @property
    def approvals_removed(self) -> int:
        return sum(max(0, m.approvals_before - m.approvals_after) for m in self.moves)

    def tier_moves(self) -> set[str]:
        return {
            f"{m.tier_before}→{m.tier_after}" for m in self.moves if m.tier_before != m.tier_after
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "thread_id": self.thread_id,
            "seq": self.seq,
            "at": self.at,
            "order_usd": str(self.order_usd),
            "approvals_added": self.approvals_added,
            "approvals_removed": self.approvals_removed,
            "moves": [m.as_json() for m in self.moves],
            "detection": None
            if self.detection is None
            else {"before": self.detection[0], "after": self.detection[1]},
        }


@dataclass
class Summary:
    policy: str
    days: int
    since: str
    decisions: int = 0  # replayed
    in_window: int = 0  # recorded in the window (more than replayed under a limit)
    changed: int = 0
    strategy_changed: int = 0  # decisions whose top strategy changes for some exception
    tier_changed: int = 0  # decisions whose top plan's tier changes for some exception
    approvals_added: int = 0  # votes the candidate would ask for that were not asked for
    approvals_removed: int = 0  # votes asked for that the candidate would not ask for
    new_waits: int = 0  # decisions that ran at once and would wait for people
    # "L1→L2" → decisions, orders, their value in USD
    tier_moves: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions_changed: list[ChangedDecision] = field(default_factory=list)
    not_replayable: list[dict[str, Any]] = field(default_factory=list)

    def moved_usd(self, way: str) -> Decimal:
        return Decimal(self.tier_moves.get(way, {}).get("orders_usd", "0"))

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "days": self.days,
            "since": self.since,
            "decisions": self.decisions,
            "in_window": self.in_window,
            "changed": self.changed,
            "strategy_changed": self.strategy_changed,
            "tier_changed": self.tier_changed,
            "approvals_added": self.approvals_added,
            "approvals_removed": self.approvals_removed,
            "new_waits": self.new_waits,
            "l1_to_l2_usd": str(self.moved_usd("L1→L2")),
            "tier_moves": self.tier_moves,
            "decisions_changed": [d.as_json() for d in self.decisions_changed],
            "not_replayable": self.not_replayable,
        }


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise InputError(f"days: {days} is not between 1 and {MAX_DAYS}; give a number of days")
    return days


def whatif_on_history(
    entries: Iterable[AuditEntry],
    clear_values: ClearValues,
    policy: Policy,
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    limit: int | None = None,
) -> Summary:
    """What ``policy`` would have changed in the decisions recorded over the last ``days``
    (the most recent ``limit`` of them, when given: a replay takes some milliseconds per
    decision, and a page should answer in seconds)."""
    since = (now or datetime.now(UTC)) - timedelta(days=check_days(days))
    if limit is not None and limit < 1:
        raise InputError(f"limit: {limit} is not a number of decisions; give 1 or more")

    def recent(run: Run) -> bool:
        try:
            at = datetime.fromisoformat(run.at)
        except ValueError:
            return False
        return (at if at.tzinfo else at.replace(tzinfo=UTC)) >= since

    keep = recent
    in_window: int | None = None
    if limit is not None:
        entries = list(entries)  # (read twice: which runs, then their replay)
        window = [run.thread_id for run in collect(entries)[1] if recent(run)]
        in_window = len(window)
        chosen = set(window[-limit:])

        def keep(run: Run) -> bool:
            return run.thread_id in chosen

    result = what_if(entries, policy, checkers(), clear_values, keep=keep)
    summary = summarize(result, days=days, since=since)
    summary.in_window = summary.decisions if in_window is None else in_window
    return summary


def summarize(result: WhatIf, *, days: int, since: datetime) -> Summary:
    summary = Summary(
        policy=result.policy,
        days=days,
        since=since.isoformat(timespec="seconds"),
        decisions=result.decisions,
        not_replayable=result.not_replayable,
    )
    detection = {
        c.thread_id: (list(c.before), list(c.after))
        for c in result.changes
        if c.field == "detection"
    }
    latest: dict[str, ChangedDecision] = {}  # order → its latest changed decision
    last_seq: dict[str, int] = {}  # order → its latest decision, changed or not
    for outcome in result.outcomes:
        last_seq[outcome.order_id] = max(outcome.seq, last_seq.get(outcome.order_id, 0))
        decision = _changed(outcome, detection.get(outcome.thread_id))
        if decision is None:
            continue
        summary.decisions_changed.append(decision)
        summary.changed += 1
        moves = decision.moves
        summary.strategy_changed += any(m.strategy_before != m.strategy_after for m in moves)
        summary.tier_changed += any(m.tier_before != m.tier_after for m in moves)
        summary.approvals_added += decision.approvals_added
        summary.approvals_removed += decision.approvals_removed
        summary.new_waits += not _waits(outcome.before) and bool(_waits(outcome.after))
        latest[outcome.order_id] = decision
    for decision in summary.decisions_changed:
        for way in sorted(decision.tier_moves()):
            move = summary.tier_moves.setdefault(
                way, {"decisions": 0, "orders": 0, "orders_usd": "0"}
            )
            move["decisions"] += 1
    for order_id, decision in latest.items():
        if decision.seq != last_seq[order_id]:  # decided again since, and that one is unchanged
            continue
        for way in decision.tier_moves():
            move = summary.tier_moves[way]
            move["orders"] += 1
            move["orders_usd"] = str(Decimal(move["orders_usd"]) + decision.order_usd)
    summary.tier_moves = dict(sorted(summary.tier_moves.items()))
    return summary


def _waits(tops: dict[str, Any]) -> int:
    return sum(1 for top in tops.values() if top.tier != Tier.L1.value)


def _changed(
    outcome: Outcome, detection: tuple[list[str], list[str]] | None
) -> ChangedDecision | None:
    moves = []
    for kind in sorted(set(outcome.before) & set(outcome.after)):
        a, b = outcome.before[kind], outcome.after[kind]
        if (a.strategy, a.tier, a.approvals) == (b.strategy, b.tier, b.approvals):
            continue
        moves.append(
            Move(
                kind=kind,
                strategy_before=a.strategy,
                strategy_after=b.strategy,
                tier_before=a.tier,
                tier_after=b.tier,
                approvals_before=a.approvals,
                approvals_after=b.approvals,
                cost_before_usd=a.cost_usd,
                cost_after_usd=b.cost_usd,
            )
        )
    if not moves and detection is None:
        return None
    return ChangedDecision(
        order_id=outcome.order_id,
        thread_id=outcome.thread_id,
        seq=outcome.seq,
        at=outcome.at,
        order_usd=outcome.order_usd,
        moves=tuple(moves),
        detection=detection,
    )
