"""Replay: derive every recorded decision again from the inputs the audit log recorded for it,
without calling any tool or model, and say where it does not come out the same; and what-if:
the same history under another policy.

A decision is one run of the graph (an order version under a policy): what detection found,
the plans drafted and ranked for each exception (strategy, actions, cost, tier, score, cited
cases) and what the gate did with the top plan (run now, or queue for approval). Its inputs
are in the log: ``order.detected`` holds the order and the facts view the run read and the
checkers' versions, ``cases.retrieved`` the past cases ranking counted, ``policy.recorded``
the policy's content; ``plans.ranked`` and ``gate.decided`` hold what was decided. Personal
values come back from the clear values held beside the log; a run whose values were erased
cannot be replayed and is counted apart, not as a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from agent import playbooks
from agent.context import Checkers, Context
from agent.detect import detect
from agent.inputs import POLICY_EVENT, checker_versions
from agent.notes import NOTE_ALLOWED, READ_EVENT, judged_entry
from agent.rank import rank
from audit.models import AuditEntry
from audit.personal import refs_in, restore
from domain.errors import ExdeskError
from domain.models import Order, Plan, Tier, World
from domain.policy import Policy

ClearValues = Callable[[list[str]], Mapping[str, str]]


@dataclass
class Run:
    """What the log recorded of one run."""

    thread_id: str
    order_id: str
    seq: int
    policy_ref: str
    detected: dict[str, Any]
    at: str = ""  # when order.detected was appended
    evidence: dict[str, list[dict[str, Any]]] | None = None
    plans: dict[str, list[dict[str, Any]]] | None = None
    gate: dict[str, Any] | None = None
    reading: dict[str, Any] | None = None  # the model's recorded reading of the notes (§8)


@dataclass(frozen=True)
class Derived:
    kinds: list[str]
    findings: list[dict[str, Any]]
    plans: dict[str, list[dict[str, Any]]]
    run_now: list[str]
    awaiting: list[str]
    order_usd: Decimal = Decimal(0)  # the order's value (its lines) in USD, by its facts' rate


@dataclass
class Mismatch:
    order_id: str
    thread_id: str
    seq: int
    what: str
    recorded: Any = None
    replayed: Any = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Change:
    """One way a decision comes out differently under another policy."""

    order_id: str
    thread_id: str
    seq: int
    kind: str
    field: str  # detection, strategy, tier, approvals, gate
    before: Any
    after: Any

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Report:
    decisions: int = 0
    reproduced: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    not_replayable: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "reproduced": self.reproduced,
            "mismatches": [m.as_json() for m in self.mismatches],
            "not_replayable": self.not_replayable,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Top:
    """The top plan for one exception of a decision."""

    strategy: str
    tier: str
    cost_usd: Decimal
    approvals: int


@dataclass
class Outcome:
    """One decision derived under the recorded policy and under the candidate: the top
    plan per exception kind, each way, and the order's value."""

    order_id: str
    thread_id: str
    seq: int
    at: str
    order_usd: Decimal
    before: dict[str, Top]
    after: dict[str, Top]


@dataclass
class WhatIf:
    policy: str
    decisions: int = 0
    changed: int = 0
    changes: list[Change] = field(default_factory=list)
    not_replayable: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.field] = out.get(change.field, 0) + 1
        for change in self.changes:
            if change.field == "tier":
                way = "tier_up" if _level(change.after) > _level(change.before) else "tier_down"
                out[way] = out.get(way, 0) + 1
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "decisions": self.decisions,
            "changed": self.changed,
            "totals": self.totals(),
            "changes": [c.as_json() for c in self.changes],
            "not_replayable": self.not_replayable,
        }


class NotReplayable(Exception):
    """A run whose inputs the log does not hold (or no longer holds: an erasure)."""


def collect(entries: Iterable[AuditEntry]) -> tuple[dict[str, dict[str, Any]], list[Run]]:
    """The recorded policies (ref → content) and runs, in log order."""
    policies: dict[str, dict[str, Any]] = {}
    runs: dict[str, Run] = {}
    readings: dict[str, dict[str, Any]] = {}  # thread → its notes' model.read (before detection)
    for entry in entries:
        payload = entry.payload
        if entry.event == POLICY_EVENT:
            policies[str(payload.get("ref"))] = payload.get("policy", {})
            continue
        thread = payload.get("thread_id")
        if not isinstance(thread, str):
            continue
        if entry.event == READ_EVENT and payload.get("purpose") == "notes":
            readings[thread] = payload
        elif entry.event == "order.detected":
            runs[thread] = Run(
                thread_id=thread,
                order_id=str(payload.get("order_id")),
                seq=entry.seq,
                policy_ref=str(payload.get("policy")),
                detected=payload,
                at=entry.at,
                reading=readings.get(thread),
            )
        elif thread in runs:
            run = runs[thread]
            if entry.event == "cases.retrieved":
                run.evidence = payload.get("evidence")
            elif entry.event == "plans.ranked":
                run.plans = payload.get("plans")
            elif entry.event == "gate.decided":
                run.gate = payload
    return policies, list(runs.values())


def approvals_needed(policy: Policy, tier: str) -> int:
    if tier == Tier.L1.value:
        return 0
    return policy.approvals[Tier(tier)].approvals


def derive(run: Run, policy: Policy, checkers: Checkers, clear: Mapping[str, str]) -> Derived:
    """The decision derived again from the run's recorded inputs under ``policy``."""
    detected = restore(run.detected, clear)
    try:
        order = Order.model_validate(detected["order"])
        world = World.model_validate(detected["facts"])
    except (KeyError, ValidationError) as exc:
        raise NotReplayable(f"the recorded order or facts cannot be read ({exc})") from None
    try:
        ctx = Context(order=order, world=world, policy=policy, checkers=checkers)
    except ExdeskError as exc:
        raise NotReplayable(str(exc)) from None
    reading = None
    if run.reading is not None:  # the recorded answer, judged again: no model is called
        judged = judged_entry(restore(run.reading, clear), order.notes or "", NOTE_ALLOWED)
        reading = judged.reading
    findings = detect(ctx, reading)
    evidence = restore(run.evidence or {}, clear)
    plans: dict[str, list[Plan]] = {}
    for finding in findings:
        drafts = playbooks.draft(ctx, finding)
        plans[finding.kind.value] = rank(drafts, policy, evidence.get(finding.kind.value, []))
    run_now = [k for k, v in plans.items() if v and v[0].tier is Tier.L1]
    awaiting = [k for k, v in plans.items() if v and v[0].tier is not Tier.L1]
    return Derived(
        kinds=[f.kind.value for f in findings],
        findings=[f.model_dump(mode="json") for f in findings],
        plans={k: [p.model_dump(mode="json") for p in v] for k, v in plans.items()},
        run_now=run_now,
        awaiting=awaiting,
        order_usd=ctx.to_usd(ctx.order_total()),
    )


def _clear_for(run: Run, clear_values: ClearValues) -> dict[str, str]:
    refs = sorted(
        refs_in(run.detected)
        | refs_in(run.evidence or {})
        | refs_in(run.plans or {})
        | refs_in(run.reading or {})
    )
    clear = dict(clear_values(refs)) if refs else {}
    missing = [r for r in refs_in(run.detected) | refs_in(run.reading or {}) if r not in clear]
    if missing:
        raise NotReplayable(f"{len(missing)} personal values of the order were erased")
    return clear


def clear_for(run: Run, clear_values: ClearValues) -> dict[str, str]:
    """The clear personal values a run's replay needs; NotReplayable when they were erased."""
    return _clear_for(run, clear_values)


def _policy_for(run: Run, policies: Mapping[str, dict[str, Any]]) -> Policy:
    content = policies.get(run.policy_ref)
    if content is None:
        raise NotReplayable(f"the log does not hold the content of policy {run.policy_ref}")
    try:
        return Policy.model_validate(content)
    except ValidationError as exc:
        raise NotReplayable(
            f"the recorded policy {run.policy_ref} cannot be read ({exc})"
        ) from None


def replay(entries: Iterable[AuditEntry], checkers: Checkers, clear_values: ClearValues) -> Report:
    """Derive every recorded decision again under its own policy; report what differs."""
    policies, runs = collect(entries)
    report = Report()
    versions = checker_versions()
    noted: set[str] = set()
    for run in runs:
        report.decisions += 1
        try:
            clear = _clear_for(run, clear_values)
            derived = derive(run, _policy_for(run, policies), checkers, clear)
        except NotReplayable as exc:
            report.not_replayable.append(_skipped(run, str(exc)))
            continue
        recorded_versions = run.detected.get("checkers", {})
        if recorded_versions != versions and str(recorded_versions) not in noted:
            noted.add(str(recorded_versions))
            report.notes.append(
                f"some runs were recorded with checkers {recorded_versions}, replayed with "
                f"{versions}: a difference in an address or HS code verdict may come from that"
            )
        found = _compare(run, derived, clear)
        report.mismatches += found
        report.reproduced += not found
    return report


def _compare(run: Run, derived: Derived, clear: Mapping[str, str]) -> list[Mismatch]:
    out: list[Mismatch] = []

    def differ(what: str, recorded: Any, replayed: Any) -> None:
        if recorded != replayed:
            out.append(Mismatch(run.order_id, run.thread_id, run.seq, what, recorded, replayed))

    differ("findings", restore(run.detected.get("findings", []), clear), derived.findings)
    recorded_plans = restore(run.plans or {}, clear)
    for kind in sorted(set(recorded_plans) | set(derived.plans)):
        mine, theirs = recorded_plans.get(kind, []), derived.plans.get(kind, [])
        if mine == theirs:
            continue
        for index, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if fields:
                name = f"plans.{kind}[{index}] ({', '.join(fields)})"
                differ(name, {k: a.get(k) for k in fields}, {k: b.get(k) for k in fields})
                break
        else:
            differ(f"plans.{kind} (count)", len(mine), len(theirs))
    if run.gate is not None:
        differ("gate.run_now", sorted(run.gate.get("run_now", [])), sorted(derived.run_now))
        differ("gate.awaiting", sorted(run.gate.get("awaiting", {})), sorted(derived.awaiting))
    return out


def what_if(
    entries: Iterable[AuditEntry],
    policy: Policy,
    checkers: Checkers,
    clear_values: ClearValues,
    *,
    keep: Callable[[Run], bool] | None = None,
) -> WhatIf:
    """Every recorded decision (those ``keep`` keeps) derived again under ``policy``: which
    would change (the exceptions found, the top strategy, its tier, the approvals it needs,
    the gate)."""
    policies, runs = collect(entries)
    result = WhatIf(policy=policy.ref)
    for run in runs:
        if keep is not None and not keep(run):
            continue
        result.decisions += 1
        try:
            clear = _clear_for(run, clear_values)
            old_policy = _policy_for(run, policies)
            before = derive(run, old_policy, checkers, clear)
            after = derive(run, policy, checkers, clear)
        except NotReplayable as exc:
            result.not_replayable.append(_skipped(run, str(exc)))
            continue
        changes = _changes(run, before, after, old_policy, policy)
        result.changes += changes
        result.changed += bool(changes)
        result.outcomes.append(
            Outcome(
                order_id=run.order_id,
                thread_id=run.thread_id,
                seq=run.seq,
                at=run.at,
                order_usd=after.order_usd,
                before=_tops(before, old_policy),
                after=_tops(after, policy),
            )
        )
    return result


def _tops(derived: Derived, policy: Policy) -> dict[str, Top]:
    return {
        kind: Top(
            strategy=str(plans[0]["strategy"]),
            tier=str(plans[0]["tier"]),
            cost_usd=Decimal(str(plans[0].get("cost_usd", 0))),
            approvals=approvals_needed(policy, str(plans[0]["tier"])),
        )
        for kind, plans in derived.plans.items()
        if plans
    }


def _changes(run: Run, before: Derived, after: Derived, old: Policy, new: Policy) -> list[Change]:
    out: list[Change] = []

    def change(kind: str, name: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(Change(run.order_id, run.thread_id, run.seq, kind, name, a, b))

    if sorted(before.kinds) != sorted(after.kinds):
        change("*", "detection", sorted(before.kinds), sorted(after.kinds))
    for kind in sorted(set(before.plans) & set(after.plans)):
        a, b = before.plans[kind], after.plans[kind]
        if not a or not b:
            continue
        change(kind, "strategy", a[0]["strategy"], b[0]["strategy"])
        change(kind, "tier", a[0]["tier"], b[0]["tier"])
        change(
            kind,
            "approvals",
            approvals_needed(old, a[0]["tier"]),
            approvals_needed(new, b[0]["tier"]),
        )
        gate_a = "run now" if kind in before.run_now else "await approval"
        gate_b = "run now" if kind in after.run_now else "await approval"
        change(kind, "gate", gate_a, gate_b)
    return out


def _skipped(run: Run, why: str) -> dict[str, Any]:
    return {"order_id": run.order_id, "thread_id": run.thread_id, "seq": run.seq, "why": why}


def _level(tier: Any) -> int:
    try:
        return Tier(str(tier)).level
    except ValueError:
        return 0
