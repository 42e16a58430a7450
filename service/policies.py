"""Policy versions, as the CLI and HTTP share them: import a draft, list, show, diff, activate,
roll back; a candidate in shadow or rolled out to a share of the orders, and the kill switch.

Who may: everyone at the desk reads; approvers and supervisors import drafts (a draft decides
nothing until a supervisor activates it, shadows it or rolls it out); supervisors change what
is in force, with their token. Each change and its audit entry commit in one transaction, one
change at a time across processes. A version is checked against contract §4 when it is
imported and again before it is put in force (a policy file a process was pinned to is stored
without that check, as before, and cannot be activated while weaker).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from domain.errors import InputError, NotAllowed, NotFound
from domain.models import User
from domain.policy import Policy, PolicyError, check_contract, parse_policy
from service import policy_rebind
from service.people import acting_supervisor, allow
from service.policy_book import PolicyText, store_version
from service.wiring import Exdesk
from store.db import write
from store.policies import Mode, PolicyState, PolicyVersion

MAX_POLICY_CHARS = 200_000
MAX_VERSION = 2**31 - 1  # what an INTEGER column holds on every database
ROLLOUT_STEPS = "5, 25, 100 (any whole number from 1 to 100)"


@dataclass(frozen=True)
class Imported:
    version: PolicyVersion
    new: bool  # False: the same content was stored already, as this version


def parse_draft(text: str, source: str) -> Policy:
    """The draft parsed and checked (file, line, field), contract floors included."""
    if len(text) > MAX_POLICY_CHARS:
        raise PolicyError(
            f"{source}: {len(text)} characters; a policy is at most {MAX_POLICY_CHARS}"
        )
    policy = parse_policy(text, source)
    check_contract(policy, text, source)
    return policy


def _author(by: User | None, doing: str, what: str) -> User:
    if by is None:
        raise NotAllowed(
            f"to {doing} you need the token of {what} (--token or EXDESK_TOKEN; over HTTP "
            "Authorization: Bearer TOKEN); `exdesk users add` gives one"
        )
    return by


def import_policy(
    app: Exdesk, text: str, source: str, *, by: User | None, comment: str | None = None
) -> Imported:
    """Store a draft as a new version (not in force). The same content again is the version
    it was stored as: nothing new is written."""
    author = _author(by, "import a policy", "an approver or supervisor")
    allow(author, "import policies")
    policy = parse_draft(text, source)
    given = PolicyText(policy, text, source)
    comment = comment.strip() or None if comment is not None else None

    def work(conn: Connection) -> Imported:
        app.policy_store.serialize(conn)
        current = app.users.find(author.person, conn)
        if current is None:
            raise NotAllowed(f"{author.name}'s token no longer works; ask a supervisor")
        allow(current, "import policies")
        version, new = store_version(
            app.policy_store, conn, given, author=current.name, comment=comment
        )
        if new:
            app.audit.append(
                f"person:{current.name}",
                "policy.imported",
                {
                    "version": version.id,
                    "ref": policy.ref,
                    "digest": policy.digest,
                    "comment": comment,
                    "policy": policy.model_dump(mode="json"),
                },
                conn=conn,
            )
        return Imported(version, new)

    return write(app.engine, work)


def _in_force(app: Exdesk, conn: Connection, number: int) -> tuple[PolicyVersion, Policy]:
    """Version ``number`` and its policy, refused when it is weaker than the contract."""
    version = app.policy_store.get(number, conn)
    source = f"policy version {number}"
    policy = parse_policy(version.content, source)
    check_contract(policy, version.content, source)
    return version, policy


def _state(app: Exdesk, conn: Connection) -> PolicyState:
    state = app.policy_store.state(conn)
    assert state is not None  # seeded when exdesk opened the store
    return state


def _changed(app: Exdesk, work: Any) -> PolicyState:
    """Run a change (``work(conn, locks)``) in one transaction; the orders it locked (those
    of approved proposals it decides again, ``policy_rebind``) are freed after the commit."""
    with policy_rebind.OrderLocks(app.engine) as locks:
        state: PolicyState = write(app.engine, lambda conn: work(conn, locks))
    app.refresh_policy()
    return state


def _payload(
    state: PolicyState, done: list[policy_rebind.Redecided], **more: Any
) -> dict[str, Any]:
    return {
        "state": state.seq,
        "active": state.active,
        "candidate": state.candidate,
        "mode": state.mode,
        "percent": state.percent,
        **more,
        **policy_rebind.summary(done),
    }


def _key(state: PolicyState) -> str:
    """The audit key of the entry that records policy state ``state`` (``change_entry``)."""
    return f"policy-state:{state.seq}"


def change_entry(app: Exdesk, state: PolicyState) -> dict[str, Any] | None:
    """The payload of the audit entry that recorded ``state``: what it put in force and how
    many open proposals it kept or voided (``service.policy_rebind``)."""
    entry = app.audit.by_key(_key(state))
    return None if entry is None else entry.payload


def activate(
    app: Exdesk, number: int, *, by: User | None, comment: str | None = None
) -> PolicyState:
    """Put version ``number`` in force for every order (ending any shadow or rollout)."""

    def work(conn: Connection, locks: policy_rebind.OrderLocks) -> PolicyState:
        app.policy_store.serialize(conn)
        who = acting_supervisor(app, conn, by, f"activate policy version {number}")
        version, _ = _in_force(app, conn, number)
        before = _state(app, conn)
        if before.active == number and before.candidate is None:
            raise InputError(f"policy version {number} is active already")
        previous = app.policy_store.get(before.active, conn)
        state = app.policy_store.change(
            conn,
            active=number,
            activated_seq=None,
            restores_seq=before.activated_seq,
            candidate=None,
            mode=None,
            percent=None,
            action="activate",
            by=who.name,
            comment=comment,
        )
        done = policy_rebind.redecide_open(app, conn, before, state, locks)
        app.audit.append(
            f"person:{who.name}",
            "policy.activated",
            _payload(
                state,
                done,
                version=number,
                ref=version.ref,
                previous=previous.id,
                previous_ref=previous.ref,
                comment=comment,
            ),
            key=_key(state),
            conn=conn,
        )
        policy_rebind.record(app, conn, done, state, actor=f"person:{who.name}")
        return state

    return _changed(app, work)


def rollback(app: Exdesk, *, by: User | None, comment: str | None = None) -> PolicyState:
    """Put back the version that was active before the current one was activated."""

    def work(conn: Connection, locks: policy_rebind.OrderLocks) -> PolicyState:
        app.policy_store.serialize(conn)
        who = acting_supervisor(app, conn, by, "roll the policy back")
        before = _state(app, conn)
        if before.restores_seq is None:
            raise InputError(
                f"nothing to roll back to: policy version {before.active} is the first that "
                "was active here; `exdesk policy activate V` puts another in force"
            )
        target = app.policy_store.state_at(before.restores_seq, conn)
        version, _ = _in_force(app, conn, target.active)
        left = app.policy_store.get(before.active, conn)
        state = app.policy_store.change(
            conn,
            active=target.active,
            activated_seq=None,
            restores_seq=target.restores_seq,
            candidate=None,
            mode=None,
            percent=None,
            action="rollback",
            by=who.name,
            comment=comment,
        )
        done = policy_rebind.redecide_open(app, conn, before, state, locks)
        app.audit.append(
            f"person:{who.name}",
            "policy.rolled_back",
            _payload(
                state,
                done,
                version=version.id,
                ref=version.ref,
                previous=left.id,
                previous_ref=left.ref,
                comment=comment,
            ),
            key=_key(state),
            conn=conn,
        )
        policy_rebind.record(app, conn, done, state, actor=f"person:{who.name}")
        return state

    return _changed(app, work)


def set_candidate(
    app: Exdesk,
    number: int,
    *,
    mode: Mode,
    percent: int | None = None,
    by: User | None,
    comment: str | None = None,
) -> PolicyState:
    """Run version ``number`` beside the active one: in shadow (it decides every order too,
    recorded and compared, never executed) or for ``percent`` % of the orders."""
    if mode == "rollout" and (percent is None or not 1 <= percent <= 100):
        raise InputError(f"--percent must be a share of the orders: {ROLLOUT_STEPS}")
    if mode == "shadow":
        percent = None
    doing = f"{'shadow' if mode == 'shadow' else 'roll out'} policy version {number}"

    def work(conn: Connection, locks: policy_rebind.OrderLocks) -> PolicyState:
        app.policy_store.serialize(conn)
        who = acting_supervisor(app, conn, by, doing)
        version, _ = _in_force(app, conn, number)
        before = _state(app, conn)
        if before.active == number:
            raise InputError(f"policy version {number} is the active one; name another")
        state = app.policy_store.change(
            conn,
            active=before.active,
            activated_seq=before.activated_seq,
            restores_seq=before.restores_seq,
            candidate=number,
            mode=mode,
            percent=percent,
            action=mode,
            by=who.name,
            comment=comment,
        )
        done = policy_rebind.redecide_open(app, conn, before, state, locks)
        app.audit.append(
            f"person:{who.name}",
            "policy.shadowed" if mode == "shadow" else "policy.rolled_out",
            _payload(state, done, version=number, ref=version.ref, comment=comment),
            key=_key(state),
            conn=conn,
        )
        policy_rebind.record(app, conn, done, state, actor=f"person:{who.name}")
        return state

    return _changed(app, work)


def kill(app: Exdesk, *, by: User | None, comment: str | None = None) -> PolicyState:
    """The kill switch: every order back to the active version at once (no candidate)."""

    def work(conn: Connection, locks: policy_rebind.OrderLocks) -> PolicyState:
        app.policy_store.serialize(conn)
        who = acting_supervisor(app, conn, by, "stop the candidate policy")
        before = _state(app, conn)
        if before.candidate is None:
            raise InputError("no candidate policy runs: nothing to stop")
        state = app.policy_store.change(
            conn,
            active=before.active,
            activated_seq=before.activated_seq,
            restores_seq=before.restores_seq,
            candidate=None,
            mode=None,
            percent=None,
            action="kill",
            by=who.name,
            comment=comment,
        )
        done = policy_rebind.redecide_open(app, conn, before, state, locks)
        app.audit.append(
            f"person:{who.name}",
            "policy.killed",
            _payload(state, done, version=before.candidate, was=before.mode, comment=comment),
            key=_key(state),
            conn=conn,
        )
        policy_rebind.record(app, conn, done, state, actor=f"person:{who.name}")
        return state

    return _changed(app, work)


# --- reading ----------------------------------------------------------------------------


def resolve(app: Exdesk, given: str | int | None) -> PolicyVersion:
    """A version by number, by the ref a decision records (``label@digest12``), or the
    active one (None)."""
    store = app.policy_store
    if given is None:
        return store.get(_state_now(app).active)
    text = str(given).strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        if number > MAX_VERSION:
            raise NotFound(f"no policy version {text}; `exdesk policy list` shows them")
        return store.get(number)
    found = store.by_ref(text)
    if found is None:
        raise InputError(
            f"{text!r} is neither a version number nor a recorded ref (label@digest); "
            "`exdesk policy list` shows them"
        )
    return found


def _state_now(app: Exdesk) -> PolicyState:
    state = app.policy_store.state()
    assert state is not None
    return state


def describe(app: Exdesk, version: PolicyVersion, state: PolicyState) -> dict[str, Any]:
    """A version as the API and the list show it (without its content)."""
    role = None
    if version.id == state.active:
        role = "active"
    elif version.id == state.candidate:
        role = state.mode
    return {
        "version": version.id,
        "label": version.label,
        "ref": version.ref,
        "digest": version.digest,
        "author": version.author,
        "created_at": version.created_at.isoformat(),
        "comment": version.comment,
        "status": role,
        "percent": state.percent if role == "rollout" else None,
    }


def state_json(state: PolicyState) -> dict[str, Any]:
    return {
        "seq": state.seq,
        "active": state.active,
        "candidate": state.candidate,
        "mode": state.mode,
        "percent": state.percent,
        "action": state.action,
        "by": state.by,
        "at": state.at.isoformat(),
        "comment": state.comment,
        "can_roll_back": state.restores_seq is not None,
    }


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def field_diff(a: Policy, b: Policy) -> list[dict[str, Any]]:
    """What differs between two policies, field by field (``limits.l1_usd``, ...), in the
    order of the first then the second."""
    old = _flat(a.model_dump(mode="json", exclude={"digest"}))
    new = _flat(b.model_dump(mode="json", exclude={"digest"}))
    fields = [*old, *(k for k in new if k not in old)]
    return [
        {"field": f, "before": old.get(f), "after": new.get(f)}
        for f in fields
        if old.get(f) != new.get(f)
    ]


def text_diff(a: PolicyVersion, b: PolicyVersion) -> str:
    lines = difflib.unified_diff(
        a.content.splitlines(keepends=True),
        b.content.splitlines(keepends=True),
        fromfile=f"version {a.id} ({a.ref})",
        tofile=f"version {b.id} ({b.ref})",
    )
    return "".join(lines)


def diff(app: Exdesk, a: str | int, b: str | int) -> dict[str, Any]:
    va, vb = resolve(app, a), resolve(app, b)
    pa = app.policies.version_policy(va.id)
    pb = app.policies.version_policy(vb.id)
    return {
        "from": va.id,
        "to": vb.id,
        "fields": field_diff(pa, pb),
        "text": text_diff(va, vb),
    }
