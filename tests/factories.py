"""Builders for tests: the contract's example cases, and orders varied from them."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from agent.context import Checkers, Context
from agent.runner import RunResult
from domain.models import Order, User, World
from domain.policy import Policy, default_policy
from service import usecases
from service.wiring import Exdesk
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes

EXAMPLES = Path(__file__).resolve().parents[1] / "evals" / "data" / "examples.jsonl"


@cache
def _examples() -> dict[str, dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return {case["id"]: case for case in (json.loads(line) for line in lines if line.strip())}


def example(case_id: str) -> dict[str, Any]:
    """A deep copy of one example case, as JSON."""
    return copy.deepcopy(_examples()[case_id])


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def clean_case(**patch: Any) -> dict[str, Any]:
    """The clean example (NL order from WH-FRA) with ``patch`` merged into it."""
    return merge(example("EX-clean-001"), patch)


def set_stock(world: dict[str, Any], warehouse_id: str, sku: str, on_hand: int) -> None:
    for row in world["inventory"]:
        if row["warehouse_id"] == warehouse_id and row["sku"] == sku:
            row["on_hand"] = on_hand
            row["reserved"] = 0
            return
    world["inventory"].append(
        {"warehouse_id": warehouse_id, "sku": sku, "on_hand": on_hand, "reserved": 0}
    )


@cache
def checkers() -> Checkers:
    return Checkers(address=I18nAddressRules(), hs=HsCodes())


def context(case: dict[str, Any], policy: Policy | None = None) -> Context:
    return Context(
        order=Order.model_validate(case["order"]),
        world=World.model_validate(case["world"]),
        policy=policy or default_policy(),
        checkers=checkers(),
    )


def start(app: Exdesk, case: dict[str, Any], world_id: str = "w") -> RunResult:
    """Load the case's world and handle its order, as `exdesk run` does."""
    usecases.load_world(app, world_id, World.model_validate(case["world"]))
    return usecases.handle(app, world_id, Order.model_validate(case["order"]))


def vote(
    app: Exdesk,
    pid: str,
    by: str,
    role: str | None = "approver",
    reason: str | None = None,
    decision: str = "approve",
) -> usecases.VoteOutcome:
    return usecases.vote(
        app,
        pid,
        by=by,
        role=role,
        decision="reject" if decision == "reject" else "approve",
        reason=reason,
    )


def held(app: Exdesk, world_id: str = "w") -> dict[tuple[str, str], int]:
    """What exdesk holds of each warehouse's stock."""
    return {(r["warehouse_id"], r["sku"]): r["held"] for r in app.worlds.stock_rows(world_id)}


def add_people(app: Exdesk, roles: dict[str, str]) -> dict[str, str]:
    """Add people as the desk wants them added: the first supervisor without a token (the
    bootstrap; ``root`` when ``roles`` names none), then everyone else by that supervisor.
    Returns each name's token (``root``'s too, when it was made)."""
    from service.people import add_user

    tokens: dict[str, str] = {}
    ordered = sorted(roles.items(), key=lambda item: item[1] != "supervisor")
    first: User | None = None
    if not ordered or ordered[0][1] != "supervisor":
        first, tokens["root"] = add_user(app, "root", "supervisor")
    for name, role in ordered:
        user, tokens[name] = add_user(app, name, role, by=first)
        first = first or user
    return tokens
