"""HTTP backends of the tool ports: ``Http<Port>``, each speaking the shop API of
``docs/shop-api.json`` to its system through an ``HttpPort`` (``tools.http_client``: timeouts,
retries, circuit breaker, tool errors).

Every acting operation is a ``POST`` with a JSON body and the caller's idempotency key as the
``Idempotency-Key`` header; the world it concerns goes as ``Exdesk-World`` (a shop with one
world may ignore it). Each port's paths begin with its name (``/orders``, ``/inventory``,
``/customs``, ``/payment``, ``/carrier``, ``/notify``, ``/facts``), so one base URL can serve
them all or each can have a URL of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from domain.errors import ToolUnavailable
from domain.models import Order, World
from tools.http_client import HttpPort, Leash
from tools.ports import Result

M = TypeVar("M", bound=BaseModel)
PORTS = ("orders", "inventory", "customs", "payment", "carrier", "notify", "facts")


def _id(value: str) -> str:
    return quote(value, safe="")


def _parsed(port: HttpPort, model: type[M], data: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ToolUnavailable(
            port.tool, f"{port.base_url} answered {what} that is not valid: {where}: {first['msg']}"
        ) from None


class _HttpPortOf:
    def __init__(self, port: HttpPort, world_id: str) -> None:
        self._port, self._world = port, world_id

    def _post(self, path: str, body: dict[str, Any], key: str) -> Result:
        return self._port.call("POST", path, body=body, key=key, world_id=self._world)


class HttpFacts(_HttpPortOf):
    def view(self, order: Order) -> World:
        data = self._port.call("POST", "/facts/view", body=order.as_json(), world_id=self._world)
        return _parsed(self._port, World, data, "facts")


class HttpOrders(_HttpPortOf):
    def get(self, order_id: str) -> Order:
        data = self._port.call("GET", f"/orders/{_id(order_id)}", world_id=self._world)
        return _parsed(self._port, Order, data, "an order")

    def place_hold(
        self, order_id: str, kind: str, reason: str, *, until: str | None = None, key: str
    ) -> Result:
        body: dict[str, Any] = {"kind": kind, "reason": reason}
        if until is not None:
            body["until"] = until
        return self._post(f"/orders/{_id(order_id)}/holds", body, key)

    def release_hold(
        self,
        order_id: str,
        kind: str,
        *,
        restore: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        body: dict[str, Any] = {"kind": kind, "restore": restore}
        return self._post(f"/orders/{_id(order_id)}/holds/release", body, key)

    def set_ship_to(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        return self._post(f"/orders/{_id(order_id)}/ship-to", {"fields": fields}, key)

    def set_lines(self, order_id: str, changes: dict[str, dict[str, Any]], *, key: str) -> Result:
        return self._post(f"/orders/{_id(order_id)}/lines", {"changes": changes}, key)

    def set_fulfillment(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        return self._post(f"/orders/{_id(order_id)}/fulfillment", {"fields": fields}, key)

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        holds: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        body = {"status": status, "holds": holds}
        return self._post(f"/orders/{_id(order_id)}/status", body, key)


class HttpInventory(_HttpPortOf):
    def reserve(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        body = {"warehouse_id": warehouse_id, "sku": sku, "qty": qty}
        return self._post("/inventory/reservations", body, key)

    def release(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        body = {"warehouse_id": warehouse_id, "sku": sku, "qty": qty}
        return self._post("/inventory/releases", body, key)


class HttpCustoms(_HttpPortOf):
    def attach_document(self, order_id: str, document: str, *, key: str) -> Result:
        path = f"/customs/orders/{_id(order_id)}/documents"
        return self._post(path, {"document": document}, key)

    def detach_document(self, order_id: str, document: str, *, key: str) -> Result:
        path = f"/customs/orders/{_id(order_id)}/documents/detach"
        return self._post(path, {"document": document}, key)


class HttpPayment(_HttpPortOf):
    def retry(self, order_id: str, *, key: str) -> Result:
        return self._post(f"/payment/orders/{_id(order_id)}/retry", {}, key)

    def request_new_method(self, order_id: str, *, key: str) -> Result:
        return self._post(f"/payment/orders/{_id(order_id)}/new-method-requests", {}, key)

    def refund(self, order_id: str, amount: str, currency: str, *, key: str) -> Result:
        body = {"amount": amount, "currency": currency}
        return self._post(f"/payment/orders/{_id(order_id)}/refunds", body, key)


class HttpCarrier(_HttpPortOf):
    def change_service(self, order_id: str, service: str, *, key: str) -> Result:
        return self._post(f"/carrier/orders/{_id(order_id)}/service", {"service": service}, key)


class HttpNotify(_HttpPortOf):
    def send(self, order_id: str, template: str, data: dict[str, Any], *, key: str) -> Result:
        body = {"template": template, "data": data}
        return self._post(f"/notify/orders/{_id(order_id)}/messages", body, key)


_CLASSES: dict[str, type[_HttpPortOf]] = {
    "orders": HttpOrders,
    "inventory": HttpInventory,
    "customs": HttpCustoms,
    "payment": HttpPayment,
    "carrier": HttpCarrier,
    "notify": HttpNotify,
    "facts": HttpFacts,
}


@dataclass
class HttpShop:
    """The ports a process reaches over HTTP: one ``HttpPort`` each (its client and circuit,
    shared by every world), and ``Http<Port>`` backends for a world on top."""

    urls: Mapping[str, str]  # port name → base URL; the ports not named are not over HTTP
    leash: Leash = field(default_factory=Leash)
    headers: Mapping[str, str] = field(default_factory=dict)
    _ports: dict[str, HttpPort] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.urls) - set(PORTS))
        if unknown:
            raise ValueError(f"no such port: {', '.join(unknown)}; ports are {', '.join(PORTS)}")
        for name, url in self.urls.items():
            self._ports[name] = HttpPort(name, url, leash=self.leash, headers=dict(self.headers))

    def backends(self, world_id: str) -> dict[str, Any]:
        """Port name → its HTTP backend for ``world_id``, for the ports that have a URL."""
        return {name: _CLASSES[name](port, world_id) for name, port in self._ports.items()}

    def backend(self, name: str, world_id: str) -> Any:
        """The HTTP backend of one port for ``world_id``."""
        return _CLASSES[name](self._ports[name], world_id)

    def port(self, name: str) -> HttpPort:
        return self._ports[name]

    def close(self) -> None:
        for port in self._ports.values():
            port.close()
