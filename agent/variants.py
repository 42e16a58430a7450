"""A plan's own parameters, the codes its variant is told apart by: where a reallocation ships
from, which warehouses a split uses, which SKU a substitute is, which service or carrier a
shipment moves to. Read from the plan's actions (what it would do), never from free text.

Learned cases keep them (``PastCase.variant``) and evidence matches on them: two
reallocations from different warehouses cite the past reallocations from their own
warehouse where the memory holds some, and fall back to every similar case of the strategy
where it holds none (``agent.rank``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.models import Draft
from knowledge.situation import ident

# parameter → how an approver reads it ("past cases that shipped from WH-SZX")
LABELS = {
    "warehouse": "shipped from {}",
    "warehouses": "split between {}",
    "substitute": "substituted {}",
    "service": "moved to {} service",
    "carrier": "moved to carrier {}",
}


def _codes(values: Any) -> str | None:
    found = sorted({c for c in (ident(v) for v in values) if c})
    return "+".join(found) or None


def variant_of(plan: Draft) -> dict[str, str]:
    """The plan's parameters (``LABELS``' keys), as plain codes; {} when it has none."""
    found: dict[str, str | None] = {}
    for action in plan.actions:
        args = action.args
        if (action.tool, action.op) == ("orders", "set_fulfillment"):
            fields = args.get("fields") or {}
            shipments = fields.get("shipments")
            if shipments:
                found["warehouses"] = _codes(s.get("warehouse_id") for s in shipments)
            elif fields.get("warehouse_id"):
                found["warehouse"] = ident(fields["warehouse_id"])
        elif (action.tool, action.op) == ("orders", "set_lines"):
            changes = args.get("changes") or {}
            found["substitute"] = _codes(c.get("sku") for c in changes.values())
        elif action.tool == "carrier":
            for key in ("service", "carrier"):
                if args.get(key):
                    found[key] = ident(args[key])
    return {k: v for k, v in found.items() if v}


def describe_variant(params: Mapping[str, str]) -> str:
    """The parameters as an approver reads them: ``shipped from WH-SZX``."""
    return ", ".join(LABELS.get(k, k + " {}").format(v) for k, v in sorted(params.items()))
