"""The policy a process decides by: the store's versions, read again only when they change.

``PolicyBook.refresh`` reads one number (the seq of the state in force, ``store.policies``);
only when it changed does it read the state and parse the versions it names (each parsed
once per process). ``for_order`` then costs no SQL: the run paths refresh once per order or
batch and ask it for every order. Under a rollout an order goes to the candidate when its
bucket (a stable hash of the candidate's number and the order id, 0 to 99) is below the
percentage, so an order keeps its version at every share and 5 → 25 → 100 % only adds orders.

A process started with a policy file (``--policy``, ``EXDESK_POLICY_FILE``) is pinned to it,
as before versions were kept: every order is decided under that file, which is stored as a
version (so its decisions name a version the store holds). When the store holds no policy
yet, the first process seeds it: with its policy file when that meets the contract, else
with the shipped default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import Connection

from domain.policy import (
    DEFAULT_POLICY_NAME,
    Policy,
    contract_problems,
    parse_policy,
)
from store.db import write
from store.policies import PolicyState, PolicyVersion, PolicyVersions

SEEDER = "exdesk"  # who stored a version nobody imported (the shipped default, a policy file)


@dataclass(frozen=True)
class PolicyText:
    """A policy with the text it was parsed from and where that came from."""

    policy: Policy
    text: str
    source: str


def shipped_policy() -> PolicyText:
    text = resources.files("domain").joinpath(DEFAULT_POLICY_NAME).read_text(encoding="utf-8")
    return PolicyText(parse_policy(text, DEFAULT_POLICY_NAME), text, DEFAULT_POLICY_NAME)


def bucket(candidate: int, order_id: str) -> int:
    """The order's place, 0 to 99, in a rollout of version ``candidate``: always the same."""
    raw = hashlib.sha256(f"{candidate}:{order_id}".encode()).digest()
    return int.from_bytes(raw[:8], "big") % 100


def deciding(state: PolicyState, order_id: str) -> int:
    """The version that decides ``order_id`` under ``state``: a rollout's candidate for its
    share of the orders, else the active one."""
    if (
        state.mode == "rollout"
        and state.candidate is not None
        and bucket(state.candidate, order_id) < (state.percent or 0)
    ):
        return state.candidate
    return state.active


def store_version(
    store: PolicyVersions, conn: Connection, given: PolicyText, *, author: str, comment: str | None
) -> tuple[PolicyVersion, bool]:
    return store.add(
        conn,
        label=given.policy.version,
        digest=given.policy.digest,
        content=given.text,
        author=author,
        comment=comment,
    )


def seed(store: PolicyVersions, pinned: PolicyText | None) -> None:
    """The first version (and state) when the store has none; a pinned file stored too."""
    state = store.state()
    if state is not None and (pinned is None or store.by_digest(pinned.policy.digest)):
        return  # (read first: the usual start writes nothing)

    def work(conn: Connection) -> None:
        store.serialize(conn)
        if pinned is not None:
            store_version(
                store, conn, pinned, author=SEEDER, comment=f"policy file {pinned.source}"
            )
        if store.state(conn) is not None:
            return
        first = pinned if pinned is not None and not contract_problems(pinned.policy) else None
        if first is None:
            first = shipped_policy()
        version, _ = store_version(
            store, conn, first, author=SEEDER, comment=f"the first version ({first.source})"
        )
        store.change(
            conn,
            active=version.id,
            activated_seq=None,
            restores_seq=None,
            candidate=None,
            mode=None,
            percent=None,
            action="seed",
            by=SEEDER,
            comment=f"the store had no policy: {first.source}",
        )

    write(store.engine, work)


class PolicyBook:
    def __init__(self, store: PolicyVersions, *, pinned: PolicyText | None = None) -> None:
        self.store = store
        self._pinned = pinned.policy if pinned is not None else None
        self._seq = -1
        self._state: PolicyState | None = None
        self._parsed: dict[int, Policy] = {}
        self.refresh()

    @property
    def pinned(self) -> bool:
        """Whether this process decides by a policy file, whatever the store's state."""
        return self._pinned is not None

    def refresh(self) -> bool:
        """Read the store's state again if it changed (one small query when it did not);
        whether it changed."""
        if self.store.counter() == self._seq:
            return False
        state = self.store.state()
        if state is None:
            raise LookupError("the store holds no policy (seed it first)")
        for number in (state.active, state.candidate):
            if number is not None:
                self.version_policy(number)
        self._state, self._seq = state, state.seq
        return True

    def version_policy(self, number: int) -> Policy:
        """The stored version ``number``, parsed (once per process)."""
        found = self._parsed.get(number)
        if found is None:
            version = self.store.get(number)
            found = parse_policy(version.content, f"policy version {number}")
            self._parsed[number] = found
        return found

    @property
    def state(self) -> PolicyState:
        assert self._state is not None
        return self._state

    @property
    def active(self) -> Policy:
        """The policy in force for orders not in a rollout (or the pinned file's)."""
        if self._pinned is not None:
            return self._pinned
        return self._parsed[self.state.active]

    def candidate(self) -> tuple[int, Policy] | None:
        state = self.state
        if self._pinned is not None or state.candidate is None:
            return None
        return state.candidate, self._parsed[state.candidate]

    def for_order(self, order_id: str) -> Policy:
        """The version that decides ``order_id``: the rollout's candidate for its share of
        orders, else the active one (as of the last ``refresh``; no SQL)."""
        if self._pinned is not None:
            return self._pinned
        return self._parsed[deciding(self.state, order_id)]

    def shadow(self) -> Policy | None:
        """The candidate deciding beside the active version on every order, never executed."""
        state = self.state
        if self._pinned is not None or state.mode != "shadow" or state.candidate is None:
            return None
        return self._parsed[state.candidate]
