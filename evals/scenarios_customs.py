"""customs_block facets. Every one needs a cross-border order."""

from __future__ import annotations

from evals import scenarios_world as W
from evals.scenarios_base import ensure_sku_line, pick_line
from evals.scenarios_checks import ScenarioError, is_valid_hs, require_hs
from evals.scenarios_draft import Draft

CANCEL = {"cancel_order": "L3"}
ATTACH = {"customs_attach_document": "L1"}
FIX_HS = {"customs_fix_hs_code": "L2"}
MANUAL = {"manual_review": "L2"}


def _require_cross_border(d: Draft) -> None:
    if not d.cross_border:
        raise ScenarioError("customs scenario on a domestic order")


def _hold(d: Draft, reason: str, **extra: str) -> None:
    d.add_event("customs_hold", {"reason": reason, **extra})


def embargoed(d: Draft) -> None:
    """Destination under embargo: only cancel_order is drafted."""
    _require_cross_border(d)
    if d.dest not in W.EMBARGOED:
        raise ScenarioError("embargo scenario needs an embargoed destination")
    if d.rng.random() < 0.3:
        d.order["customs"]["documents"].remove("commercial_invoice")
    d.expect("customs_block", dict(CANCEL), hold=True)


def prohibited(d: Draft) -> None:
    _require_cross_border(d)
    _hold(d, "prohibited_goods")
    d.expect("customs_block", dict(CANCEL), hold=True)


def missing_invoice(d: Draft) -> None:
    """No commercial_invoice: attach it (generated from the order), L1."""
    _require_cross_border(d)
    customs = d.order["customs"]
    customs["documents"].remove("commercial_invoice")
    if not customs["documents"] and d.rng.random() < 0.25:
        del d.order["customs"]
    elif not customs["documents"]:
        d.set_after(("customs", "documents"), ["commercial_invoice"])
    d.expect("customs_block", dict(ATTACH), hold=False)


def hold_packing_list(d: Draft) -> None:
    """A customs hold asks for a packing list: attach it, L1."""
    _require_cross_border(d)
    _hold(d, "missing_document", document="packing_list")
    if d.order["customs"]["documents"] == ["commercial_invoice"]:
        d.set_after(("customs", "documents"), ["commercial_invoice", "packing_list"])
    d.expect("customs_block", dict(ATTACH), hold=False)


def bad_hs(d: Draft) -> None:
    """A line's HS code missing or invalid, the catalog has a valid one: fix it, L2."""
    _require_cross_border(d)
    line = pick_line(d)
    code = d.rng.choice((*W.INVALID_HS, None))
    if code is None:
        del line["hs_code"]
    else:
        line["hs_code"] = code
    require_hs(code, False)
    require_hs(W.SKU_HS[line["sku"]], True)
    if d.rng.random() < 0.3:
        d.order["customs"]["documents"].remove("commercial_invoice")
    d.expect("customs_block", dict(FIX_HS), hold=True)


def hold_invalid_hs(d: Draft) -> None:
    """Customs calls the (single line's) code invalid and the catalog's differs: fix, L2."""
    _require_cross_border(d)
    sku = d.rng.choice(sorted(W.ALT_VALID_HS))
    line = d.make_line(sku, d.rng.randint(1, 3))
    line["hs_code"] = W.ALT_VALID_HS[sku]
    d.set_lines([line])
    require_hs(line["hs_code"], True)
    if line["hs_code"] == W.SKU_HS[sku]:
        raise ScenarioError("alternative HS equals the catalog's")
    _hold(d, "invalid_hs_code")
    d.expect("customs_block", dict(FIX_HS), hold=True)


def valuation_query(d: Draft) -> None:
    _require_cross_border(d)
    _hold(d, "valuation_query")
    d.expect("customs_block", dict(MANUAL), hold=True)


def battery_without_declaration(d: Draft) -> None:
    """A line in heading 8507 and no battery_declaration: no fix, manual review."""
    _require_cross_border(d)
    line = ensure_sku_line(d, d.rng.choice(W.BATTERY_SKUS))
    require_hs(line["hs_code"], True)
    d.order["customs"]["documents"].remove("battery_declaration")
    d.expect("customs_block", dict(MANUAL), hold=True)


def invalid_hs_no_catalog_code(d: Draft) -> None:
    """An invalid line code and no valid catalog code for the SKU: manual review."""
    _require_cross_border(d)
    line = pick_line(d)
    line["hs_code"] = d.rng.choice(W.INVALID_HS)
    for entry in d.world["catalog"]:
        if entry["sku"] == line["sku"]:
            if d.rng.random() < 0.5:
                del entry["hs_code"]
            else:
                entry["hs_code"] = d.rng.choice(W.INVALID_HS)
            if is_valid_hs(entry.get("hs_code")):
                raise ScenarioError("catalog code still valid")
    d.expect("customs_block", dict(MANUAL), hold=True)


def hold_other_document(d: Draft) -> None:
    """A hold for a document exdesk cannot generate: manual review."""
    _require_cross_border(d)
    _hold(d, "missing_document", document="certificate_of_origin")
    d.expect("customs_block", dict(MANUAL), hold=True)
