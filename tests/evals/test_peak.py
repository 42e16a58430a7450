"""The peak generator (evals.peak) that the run and screen benchmarks feed on: the same
arguments give the same bytes, the share of exceptions is exact, and every order is what it
says it is to the detectors (a clean order has no finding, an exception only its own kind)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent.context import Checkers, Context
from agent.detect import detect
from domain.models import Order, World
from evals import peak
from service.wiring import load_policy
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes

KIND = {
    "payment_retry": "payment_failed",
    "reallocate": "stockout",
    "address_fix": "bad_address",
    "attach_invoice": "customs_block",
    "fix_hs": "customs_block",
}


def test_the_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    made = peak.write(tmp_path / "a", 300)
    peak.write(tmp_path / "b", 300)
    for name in ("orders.jsonl", "world.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert made["clean"] == 285 and sum(made.values()) == 300
    peak.write(tmp_path / "c", 300, seed=14)
    assert (tmp_path / "c" / "orders.jsonl").read_bytes() != (
        tmp_path / "a" / "orders.jsonl"
    ).read_bytes()


def test_every_order_is_what_it_says_to_the_detectors() -> None:
    world = World.model_validate(peak.world())
    checkers = Checkers(address=I18nAddressRules(), hs=HsCodes())
    policy = load_policy(None)
    seen: Counter[str] = Counter()
    ids = set()
    for made, body in peak.orders(600, 0.05):
        order = Order.model_validate_json(json.dumps(body))
        ids.add((order.order_id, order.customer.id))
        kinds = [f.kind.value for f in detect(Context(order, world, policy, checkers))]
        assert kinds == ([] if made is None else [KIND[made]]), (made, order.order_id, kinds)
        seen[made or "clean"] += 1
    assert seen["clean"] == 570
    assert set(seen) == {"clean", *peak.EXCEPTIONS}
    assert len({order_id for order_id, _ in ids}) == len({c for _, c in ids}) == 600


def test_kinds_narrows_the_exceptions_and_rejects_unknown_ones() -> None:
    made = {kind for kind, _ in peak.orders(40, 1.0, kinds=("fix_hs",))}
    assert made == {"fix_hs"}
    with pytest.raises(ValueError, match="kinds must be some of"):
        list(peak.orders(1, 1.0, kinds=("nothing",)))
