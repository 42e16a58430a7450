"""A case under construction: the order, its world, and the expectation built with it."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from evals import scenarios_world as W
from evals.scenarios_checks import ScenarioError, require_hs, require_valid

JSON = dict[str, Any]

# What a fulfilled order can still raise: what events report, and payment failures.
EVENT_KINDS = frozenset({"bad_address", "customs_block", "payment_failed", "carrier_delay"})


def ts(moment: datetime) -> str:
    """RFC 3339 with the +08:00 offset used throughout the set."""
    return moment.astimezone(W.TZ).isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _money(value: Decimal, currency: str) -> Decimal:
    quantum = Decimal("1") if currency == "JPY" else Decimal("0.01")
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


@dataclass
class Draft:
    """One case being built. Facets mutate it and record what they expect."""

    rng: random.Random
    seq: int
    scenario: str
    order: JSON
    world: JSON
    tops: dict[str, dict[str, str]] = field(default_factory=dict)
    # Per kind: True = leaves a hold, False = resolved at once, None = either.
    holds: list[bool | None] = field(default_factory=list)
    after: JSON = field(default_factory=dict)
    deferred: list[Callable[[Draft], None]] = field(default_factory=list)
    money_as_text: bool = False

    # --- reading -------------------------------------------------------------------
    @property
    def wh(self) -> str:
        return str(self.order["fulfillment"]["warehouse_id"])

    @property
    def origin(self) -> str:
        return W.WAREHOUSE_COUNTRY[self.wh]

    @property
    def dest(self) -> str:
        return str(self.order["ship_to"]["country_code"])

    @property
    def cross_border(self) -> bool:
        return self.origin != self.dest

    @property
    def service(self) -> str:
        return str(self.order["fulfillment"]["service"])

    @property
    def promised_by(self) -> datetime:
        return parse_ts(self.order["fulfillment"]["promised_by"])

    @property
    def created_at(self) -> datetime:
        return parse_ts(self.order["created_at"])

    def peers(self) -> list[str]:
        """Other warehouses in the assigned warehouse's country."""
        return [
            w for w in W.WAREHOUSE_IDS if w != self.wh and W.WAREHOUSE_COUNTRY[w] == self.origin
        ]

    def foreign(self) -> list[str]:
        return [w for w in W.WAREHOUSE_IDS if W.WAREHOUSE_COUNTRY[w] != self.origin]

    def qty_by_sku(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.order["lines"]:
            out[line["sku"]] = out.get(line["sku"], 0) + int(line["qty"])
        return out

    def rate(self, warehouse_id: str) -> float:
        for row in self.world["shipping_rates"]:
            if (row["warehouse_id"], row["country_code"], row["service"]) == (
                warehouse_id,
                self.dest,
                self.service,
            ):
                return float(row["cost_usd"])
        raise ScenarioError(f"no rate for {warehouse_id} -> {self.dest} {self.service}")

    def transit_days(self, warehouse_id: str | None = None) -> int:
        """Transit days of the warehouse's rate for the order's service (0 when it has none)."""
        wid = warehouse_id or self.wh
        for row in self.world["shipping_rates"]:
            if (row["warehouse_id"], row["country_code"], row["service"]) == (
                wid,
                self.dest,
                self.service,
            ):
                return int(row["transit_days"])
        return 0

    @property
    def fulfilled(self) -> bool:
        """The order has left the warehouse: only events and payment failures count."""
        return self.order.get("status") == "fulfilled"

    # --- writing -------------------------------------------------------------------
    def expect(self, kind: str, top: dict[str, str], hold: bool | None) -> None:
        if kind in self.tops:
            raise ScenarioError(f"kind {kind} expected twice")
        self.tops[kind] = top
        self.holds.append(hold)

    def set_after(self, path: tuple[str, ...], value: Any) -> None:
        node = self.after
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    def set_available(self, warehouse_id: str, sku: str, available: int) -> None:
        for row in self.world["inventory"]:
            if row["warehouse_id"] == warehouse_id and row["sku"] == sku:
                row["reserved"] = self.rng.choice((0, 0, 0, 1, 2, 4))
                row["on_hand"] = available + row["reserved"]
                return
        raise ScenarioError(f"no inventory row {warehouse_id}/{sku}")

    def set_rate(self, warehouse_id: str, cost: float) -> None:
        for row in self.world["shipping_rates"]:
            if (row["warehouse_id"], row["country_code"], row["service"]) == (
                warehouse_id,
                self.dest,
                self.service,
            ):
                row["cost_usd"] = cost
                return
        raise ScenarioError("rate row missing")

    def add_event(self, kind: str, data: JSON, at: datetime | None = None) -> None:
        moment = at or W.NOW - timedelta(minutes=self.rng.randint(5, 50))
        self.world["events"].append(
            {"type": kind, "order_id": self.order["order_id"], "at": ts(moment), "data": data}
        )

    def make_line(self, sku: str, qty: int) -> JSON:
        return {
            "line_id": "",
            "sku": sku,
            "qty": qty,
            "unit_price": self._unit_price(sku),
            "description": W.SKU_DESCRIPTION[sku],
            "hs_code": W.SKU_HS[sku],
            "origin_country": "CN",
        }

    def set_lines(self, lines: list[JSON]) -> None:
        for k, line in enumerate(lines, start=1):
            line["line_id"] = f"{self.order['order_id']}-{k}"
        self.order["lines"] = lines
        self.sync_customs()

    def sync_customs(self) -> None:
        """Keep a cross-border order's battery declaration in step with its lines."""
        customs = self.order.get("customs")
        if customs is None:
            return
        docs = customs["documents"]
        has_battery = any(str(x.get("hs_code", "")).startswith("8507") for x in self.order["lines"])
        if has_battery and "battery_declaration" not in docs:
            docs.append("battery_declaration")
        if not has_battery and "battery_declaration" in docs:
            docs.remove("battery_declaration")

    def _unit_price(self, sku: str) -> Decimal:
        currency = self.order["currency"]
        usd = Decimal(str(W.PRICE_USD[sku])) * Decimal(str(self.rng.choice((1, 1, 1, 0.9, 1.1))))
        return _money(usd / Decimal(str(W.FX_TO_USD[currency])), currency)

    # --- finishing -----------------------------------------------------------------
    def finalize(self) -> JSON:
        self._settle_money()
        for step in self.deferred:
            step(self)
        self._self_check()
        case_id = f"DEV-{self.scenario}-{self.seq:03d}"
        return {"id": case_id, "order": self.order, "world": self.world, "expect": self._expect()}

    def _settle_money(self) -> None:
        currency = self.order["currency"]
        total = Decimal(0)
        for line in self.order["lines"]:
            price = Decimal(str(line["unit_price"]))
            total += price * int(line["qty"])
            line["unit_price"] = self._emit(price)
        self.order["payment"]["amount"] = self._emit(_money(total, currency))
        if "customs" in self.order:
            self.order["customs"]["declared_value"] = self._emit(_money(total, currency))

    def _emit(self, value: Decimal) -> float | str:
        if self.money_as_text:
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)

    def _expect(self) -> JSON:
        kinds = sorted(self.tops)
        status = self.order.get("status", "open")
        if status == "cancelled":
            order_after: JSON = {"status": status}
        elif status == "fulfilled":
            # Holds may be added, but a shipped order stays fulfilled.
            order_after = {"status": status, **self.after}
        elif any(h is True for h in self.holds):
            order_after = {"status": "on_hold", **self.after}
        elif all(h is False for h in self.holds):
            order_after = {"status": "open", **self.after}
        else:
            order_after = dict(self.after)
        return {
            "kinds": kinds,
            "top": {k: self.tops[k] for k in kinds},
            "order_after": copy.deepcopy(order_after),
        }

    def _self_check(self) -> None:
        """Guard the base assumptions: no kind fires that the scenario did not intend.

        A fulfilled order is checked for what events and payment report only; the static
        checks (address, paperwork, stock) do not apply to it.
        """
        if self.order.get("status") == "cancelled":
            return
        if not self.fulfilled:
            self._check_static()
        elif set(self.tops) - EVENT_KINDS:
            raise ScenarioError(f"static kinds expected on a fulfilled order: {sorted(self.tops)}")
        own = sorted(
            (e for e in self.world["events"] if e["order_id"] == self.order["order_id"]),
            key=lambda e: parse_ts(e["at"]),
        )
        if "payment_failed" not in self.tops and (
            self.order["payment"]["status"] == "failed"
            or any(e["type"] == "payment_failed" for e in own)
        ):
            raise ScenarioError("unintended payment failure")
        delays = [e for e in own if e["type"] == "carrier_delay"]
        if len({parse_ts(e["at"]) for e in delays}) != len(delays):
            raise ScenarioError("two carrier_delay events at the same moment")
        etas = [parse_ts(e["data"]["new_eta"]) for e in delays]
        late = bool(etas) and etas[-1] > self.promised_by
        if late != ("carrier_delay" in self.tops):
            raise ScenarioError(f"the latest carrier_delay is {'late' if late else 'not late'}")

    def _check_static(self) -> None:
        if "bad_address" not in self.tops:
            require_valid(self.order["ship_to"])
        if self.cross_border and "customs_block" not in self.tops:
            self._check_paperwork()
        if "stockout" not in self.tops:
            for sku, qty in self.qty_by_sku().items():
                if available(self.world, self.wh, sku) < qty:
                    raise ScenarioError(f"unintended stockout of {sku}")

    def _check_paperwork(self) -> None:
        docs = self.order.get("customs", {}).get("documents", [])
        if "commercial_invoice" not in docs:
            raise ScenarioError("cross-border order without invoice")
        for line in self.order["lines"]:
            require_hs(line.get("hs_code"), True)
            if line["hs_code"].startswith("8507") and "battery_declaration" not in docs:
                raise ScenarioError("battery line without declaration")


def available(world: JSON, warehouse_id: str, sku: str) -> int:
    for row in world["inventory"]:
        if row["warehouse_id"] == warehouse_id and row["sku"] == sku:
            return int(row["on_hand"]) - int(row["reserved"])
    return 0
