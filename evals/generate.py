"""Deterministic generator of the dev evaluation set.

    python -m evals.generate --n 320 --seed 7 --out evals/data/dev.jsonl

Each case is `{id, order, world, expect}` in the contract's format. Expectations are
built with the scenario (see evals/scenarios_*.py), following docs/semantics.md; no
agent code is run. The same seed gives byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from evals import scenarios_address as A
from evals import scenarios_customs as C
from evals import scenarios_misc as M
from evals import scenarios_stock as S
from evals import scenarios_world as W
from evals.scenarios_base import new_draft
from evals.scenarios_checks import ScenarioError
from evals.scenarios_draft import Draft

Facet = Callable[[Draft], None]

ALL_DESTS = tuple(c for c in W.DESTINATIONS if c not in W.EMBARGOED)
DOMESTIC_DESTS = ("CN", "US", "DE")
# Chinese addresses are the desk's bread and butter: CN is drawn more often.
DEST_WEIGHT = {"CN": 4, "US": 2}


@dataclass(frozen=True)
class Spec:
    """A scenario: where the order goes, from where, and the facets applied in order."""

    name: str
    weight: int
    facets: tuple[Facet, ...]
    dests: tuple[str, ...] = ALL_DESTS
    border: str = "any"  # "domestic", "cross" or "any"
    peer: bool = False  # the assigned warehouse needs a same-country peer


realloc_l1 = partial(S.reallocate_same_country, expensive=False)
realloc_l2_cost = partial(S.reallocate_same_country, expensive=True)
split_l1 = partial(S.split_same_country, expensive=False)
split_l2_cost = partial(S.split_same_country, expensive=True)
backorder_l1 = partial(S.backorder, on_time=True)
backorder_l2 = partial(S.backorder, on_time=False)
fulfilled_stock = partial(M.fulfilled, static=("stock",))
fulfilled_addr = partial(M.fulfilled, static=("address",))
fulfilled_paperwork_dup = partial(M.fulfilled, static=("paperwork", "duplicate"))

SPECS: tuple[Spec, ...] = (
    # no exception
    Spec("clean-domestic", 3, (), DOMESTIC_DESTS, "domestic"),
    Spec("clean-xborder", 4, (), border="cross"),
    Spec("clean-nearmiss", 6, (M.near_miss,)),
    Spec("clean-delay-cleared", 2, (M.delay_cleared,)),
    # cancelled: nothing; fulfilled: only what events report, and payment failures
    Spec("not-handled", 2, (M.not_handled,)),
    Spec("fulfilled-stock", 1, (fulfilled_stock,)),
    Spec("fulfilled-addr", 1, (fulfilled_addr,)),
    Spec("fulfilled-paperwork-dup", 1, (fulfilled_paperwork_dup,), border="cross"),
    Spec("fulfilled-delay", 2, (M.fulfilled, M.delay_upgradable)),
    Spec("fulfilled-carrier", 1, (M.fulfilled, A.carrier_exception)),
    Spec("fulfilled-customs-hold", 1, (M.fulfilled, C.valuation_query), border="cross"),
    Spec("fulfilled-pay-retry", 1, (M.fulfilled, M.payment_retry)),
    Spec("fulfilled-delay-paynew", 1, (M.fulfilled, M.delay_no_upgrade, M.payment_new_method)),
    # bad_address
    Spec("addr-fix-postal", 4, (A.postal_punct,), A.POSTAL_PUNCT_COUNTRIES),
    Spec("addr-fix-letters", 3, (A.postal_letters,), A.LETTER_COUNTRIES),
    Spec("addr-fix-area", 3, (A.fill_area,), A.FILL_AREA_COUNTRIES),
    Spec("addr-fix-swap", 3, (A.swap_city_area,), A.SWAP_COUNTRIES),
    Spec("addr-confirm-carrier", 3, (A.carrier_exception,)),
    Spec("addr-confirm-garbage", 3, (A.garbage,)),
    Spec("addr-confirm-area", 2, (A.ambiguous_area,), A.AMBIGUOUS_COUNTRIES),
    # customs_block
    Spec("customs-embargo", 3, (C.embargoed,), ("IR",), "cross"),
    Spec("customs-prohibited", 3, (C.prohibited,), border="cross"),
    Spec("customs-invoice", 4, (C.missing_invoice,), border="cross"),
    Spec("customs-packing", 3, (C.hold_packing_list,), border="cross"),
    Spec("customs-fix-hs", 4, (C.bad_hs,), border="cross"),
    Spec("customs-hold-hs", 2, (C.hold_invalid_hs,), border="cross"),
    Spec("customs-valuation", 2, (C.valuation_query,), border="cross"),
    Spec("customs-battery", 2, (C.battery_without_declaration,), border="cross"),
    Spec("customs-nocode", 2, (C.invalid_hs_no_catalog_code,), border="cross"),
    Spec("customs-otherdoc", 1, (C.hold_other_document,), border="cross"),
    # stockout
    Spec("stock-realloc-l1", 4, (realloc_l1,), peer=True),
    Spec("stock-realloc-l2-xborder", 3, (S.reallocate_cross_border,)),
    Spec("stock-realloc-l2-cost", 2, (realloc_l2_cost,), peer=True),
    Spec("stock-split-l1", 3, (split_l1,), peer=True),
    Spec("stock-split-l2-xborder", 3, (S.split_cross_border,)),
    Spec("stock-split-l2-cost", 2, (split_l2_cost,), peer=True),
    Spec("stock-backorder-l1", 3, (backorder_l1,)),
    Spec("stock-backorder-l2", 3, (backorder_l2,)),
    Spec("stock-substitute", 3, (S.substitute,)),
    Spec("stock-cancel", 3, (S.no_way_out,)),
    # payment_failed, carrier_delay, duplicate_order
    Spec("pay-retry", 4, (M.payment_retry,)),
    Spec("pay-new-method", 4, (M.payment_new_method,)),
    Spec("delay-upgrade", 4, (M.delay_upgradable,)),
    Spec("delay-no-upgrade", 4, (M.delay_no_upgrade,)),
    Spec("dup", 5, (M.duplicate,)),
    # untrusted text that must change nothing
    Spec("inject-clean", 1, (M.inject_notes,)),
    Spec("inject-clean-street", 1, (M.inject_street,)),
    Spec("inject-stock-realloc", 1, (realloc_l1, M.inject_notes), peer=True),
    Spec("inject-stock-cancel", 1, (S.no_way_out, M.inject_street)),
    Spec("inject-pay-new-method", 1, (M.payment_new_method, M.inject_street)),
    Spec("inject-customs-invoice", 1, (C.missing_invoice, M.inject_notes), border="cross"),
    Spec("inject-customs-valuation", 1, (C.valuation_query, M.inject_street), border="cross"),
    Spec("inject-dup", 1, (M.duplicate, M.inject_notes)),
    Spec("inject-addr-confirm", 1, (A.carrier_exception, M.inject_notes)),
    Spec("inject-delay", 1, (M.delay_no_upgrade, M.inject_notes)),
    # several kinds at once
    Spec("multi-addr-stock", 1, (realloc_l1, A.postal_punct), A.POSTAL_PUNCT_COUNTRIES, peer=True),
    Spec("multi-swap-pay", 1, (A.swap_city_area, M.payment_retry), A.SWAP_COUNTRIES),
    Spec("multi-confirm-backorder", 1, (backorder_l1, A.carrier_exception)),
    Spec("multi-area-invoice", 1, (C.missing_invoice, A.fill_area), A.FILL_AREA_COUNTRIES, "cross"),
    Spec("multi-hs-paynew", 1, (C.bad_hs, M.payment_new_method), border="cross"),
    Spec("multi-invoice-realloc", 1, (realloc_l1, C.missing_invoice), border="cross", peer=True),
    Spec("multi-prohibited-dup", 1, (C.prohibited, M.duplicate), border="cross"),
    Spec("multi-subst-retry", 1, (S.substitute, M.payment_retry)),
    Spec("multi-delay-split", 1, (M.delay_upgradable, split_l1), peer=True),
    Spec("multi-delay-letters", 1, (M.delay_upgradable, A.postal_letters), A.LETTER_COUNTRIES),
    Spec("multi-delay-carrier", 1, (M.delay_upgradable, A.carrier_exception)),
    Spec("multi-delay-realloc", 1, (M.delay_no_upgrade, realloc_l1), peer=True),
    Spec("multi-dup-paynew", 1, (M.payment_new_method, M.duplicate)),
    Spec("multi-dup-cancel", 1, (S.no_way_out, M.duplicate)),
    Spec("multi-retry-backorder", 1, (backorder_l1, M.payment_retry)),
    Spec("multi-embargo-paynew", 1, (C.embargoed, M.payment_new_method), ("IR",), "cross"),
    Spec(
        "multi3-letters-packing-retry",
        1,
        (C.hold_packing_list, A.postal_letters, M.payment_retry),
        A.LETTER_COUNTRIES,
        "cross",
    ),
    Spec(
        "multi3-realloc-valuation-dup",
        1,
        (S.reallocate_cross_border, C.valuation_query, M.duplicate),
        border="cross",
    ),
    Spec("multi3-postal-retry-dup", 1, (A.postal_punct, M.payment_retry, M.duplicate)),
    Spec(
        "multi3-battery-garbage-delay",
        1,
        (C.battery_without_declaration, A.garbage, M.delay_no_upgrade),
        border="cross",
    ),
)


def _warehouses_for(spec: Spec, dest: str) -> list[str]:
    out = []
    for wid in W.WAREHOUSE_IDS:
        country = W.WAREHOUSE_COUNTRY[wid]
        if spec.border == "domestic" and country != dest:
            continue
        if spec.border == "cross" and country == dest:
            continue
        if spec.peer and sum(1 for c in W.WAREHOUSE_COUNTRY.values() if c == country) < 2:
            continue
        out.append(wid)
    return out


def build_case(spec: Spec, seq: int, rng: random.Random) -> dict[str, Any]:
    """One case of the given scenario; `seq` numbers its ids."""
    dests = [d for d in spec.dests if _warehouses_for(spec, d)]
    if not dests:
        raise ScenarioError(f"{spec.name}: no destination fits")
    dest = rng.choices(dests, weights=[DEST_WEIGHT.get(d, 1) for d in dests])[0]
    warehouses = _warehouses_for(spec, dest)
    domestic = [w for w in warehouses if W.WAREHOUSE_COUNTRY[w] == dest]
    if domestic and rng.random() < 0.5:
        warehouses = domestic
    warehouse = rng.choice(warehouses)
    draft = new_draft(rng, seq, spec.name, dest, warehouse, rng.randint(1, 3))
    for facet in spec.facets:
        facet(draft)
    return draft.finalize()


def schedule(n: int, seed: int) -> list[Spec]:
    """Scenario per case: weighted blocks, each block shuffled, so coverage comes early."""
    rng = random.Random(f"schedule:{seed}")
    block = [spec for spec in SPECS for _ in range(spec.weight)]
    out: list[Spec] = []
    while len(out) < n:
        shuffled = list(block)
        rng.shuffle(shuffled)
        out.extend(shuffled)
    return out[:n]


def generate(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` cases, the same for the same seed."""
    return [
        build_case(spec, k, random.Random(f"case:{seed}:{k}"))
        for k, spec in enumerate(schedule(n, seed), start=1)
    ]


def dumps(cases: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)


def summary(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per kind, per top strategy/tier, multi-kind and clean cases."""
    kinds: Counter[str] = Counter()
    tops: Counter[str] = Counter()
    for case in cases:
        expect = case["expect"]
        kinds.update(expect["kinds"] or ["(none)"])
        for options in expect["top"].values():
            tops.update(f"{strategy}:{tier}" for strategy, tier in options.items())
    return {
        "cases": len(cases),
        "kinds": dict(sorted(kinds.items())),
        "top": dict(sorted(tops.items())),
        "multi_kind": sum(1 for c in cases if len(c["expect"]["kinds"]) > 1),
        "injection": sum(1 for c in cases if has_injection(c["order"])),
    }


def has_injection(order: dict[str, Any]) -> bool:
    texts = (order.get("notes", ""), order["ship_to"].get("street_address", ""))
    return any(inj in text for inj in W.INJECTIONS for text in texts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=320)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("evals/data/dev.jsonl"))
    parser.add_argument("--summary", action="store_true", help="print counts to stderr")
    args = parser.parse_args(argv)
    cases = generate(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(cases), encoding="utf-8", newline="\n")
    if args.summary:
        print(json.dumps(summary(cases), indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
