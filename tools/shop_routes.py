"""The routes of the shop API (``docs/shop-api.json``) in the reference shop, each acting
through a simulated port. ``act`` (the server's) runs one and makes its answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from domain.models import Order, World
from tools import shop_models as m
from tools.http_client import KEY_HEADER, REQUEST_HEADER, WORLD_HEADER
from tools.ports import Result
from tools.simulated import (
    SimulatedBackend,
    SimulatedCarrier,
    SimulatedCustoms,
    SimulatedInventory,
    SimulatedNotify,
    SimulatedOrders,
    SimulatedPayment,
    read_current_order,
)

DEFAULT_WORLD = "default"
Act = Callable[
    [str, str, str | None, str | None, Callable[[SimulatedBackend], Result]], JSONResponse
]

World_ = Annotated[
    str,
    Header(alias=WORLD_HEADER, description="exdesk's world, percent-encoded (default: default)"),
]
Key = Annotated[
    str,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=300,
        description="the same for every try of one action; a repeat returns the first answer",
    ),
]
RequestId = Annotated[
    str | None, Header(alias=REQUEST_HEADER, description="the same for every try of a call")
]

_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "model": m.Problem,
        "description": "refused: the state does not allow it, or the key was used for another "
        "action. Nothing done and no record of the key kept: the same key may act later",
    },
    422: {"model": m.Problem, "description": "malformed request; nothing done"},
    503: {"model": m.Problem, "description": "unavailable; nothing done: try again, same key"},
}
_VIEW_REFUSED: dict[int | str, dict[str, Any]] = {422: _REFUSED[422], 503: _REFUSED[503]}
_ORDER_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"model": m.Problem, "description": "no such order"},
    422: _REFUSED[422],
    503: _REFUSED[503],
}


class UnknownOrder(Exception):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id


def _dump(holds: list[Any] | None) -> list[dict[str, Any]] | None:
    if holds is None:
        return None
    return [h.model_dump(mode="json", exclude_none=True) for h in holds]


def add_shop_routes(app: FastAPI, act: Act) -> None:
    # --- orders -------------------------------------------------------------------------------

    @app.get(
        "/orders/{order_id}",
        operation_id="orders.get",
        tags=["orders"],
        response_model=Order,
        responses=_ORDER_REFUSED,
    )
    def get_order(
        order_id: str, world: World_ = DEFAULT_WORLD, rid: RequestId = None
    ) -> JSONResponse:
        """The order as it stands now."""

        def run(b: SimulatedBackend) -> Result:
            found = read_current_order(b, order_id)
            if found is None:
                raise UnknownOrder(order_id)
            return found.as_json()

        return act("orders.get", world, None, rid, run)

    @app.post(
        "/orders/{order_id}/holds",
        operation_id="orders.place_hold",
        tags=["orders"],
        response_model=m.HoldPlaced,
        responses=_REFUSED,
    )
    def place_hold(
        order_id: str,
        body: m.PlaceHold,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Hold the order, replacing its hold of that kind (``until``: the date it lasts to)."""
        until = {"until": body.until} if body.until else {}
        return act(
            "orders.place_hold",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).place_hold(
                order_id, body.kind, body.reason, key=key, **until
            ),
        )

    @app.post(
        "/orders/{order_id}/holds/release",
        operation_id="orders.release_hold",
        tags=["orders"],
        response_model=m.HoldReleased,
        responses=_REFUSED,
    )
    def release_hold(
        order_id: str,
        body: m.ReleaseHold,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Lift the order's hold of ``kind``, putting ``restore`` back in its place."""
        return act(
            "orders.release_hold",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).release_hold(
                order_id, body.kind, restore=_dump(body.restore), key=key
            ),
        )

    @app.post(
        "/orders/{order_id}/ship-to",
        operation_id="orders.set_ship_to",
        tags=["orders"],
        response_model=m.Changed,
        responses=_REFUSED,
    )
    def set_ship_to(
        order_id: str,
        body: m.SetShipTo,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Change address fields; refused when the address would not be a valid one."""
        return act(
            "orders.set_ship_to",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).set_ship_to(order_id, dict(body.fields), key=key),
        )

    @app.post(
        "/orders/{order_id}/lines",
        operation_id="orders.set_lines",
        tags=["orders"],
        response_model=m.Changed,
        responses=_REFUSED,
    )
    def set_lines(
        order_id: str,
        body: m.SetLines,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Change fields of order lines; refused for a line the order lacks."""
        return act(
            "orders.set_lines",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).set_lines(order_id, body.changes, key=key),
        )

    @app.post(
        "/orders/{order_id}/fulfillment",
        operation_id="orders.set_fulfillment",
        tags=["orders"],
        response_model=m.Changed,
        responses=_REFUSED,
    )
    def set_fulfillment(
        order_id: str,
        body: m.SetFulfillment,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Change fulfilment fields (warehouse, service, expected delivery, ...)."""
        return act(
            "orders.set_fulfillment",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).set_fulfillment(order_id, body.fields, key=key),
        )

    @app.post(
        "/orders/{order_id}/status",
        operation_id="orders.set_status",
        tags=["orders"],
        response_model=m.StatusSet,
        responses=_REFUSED,
    )
    def set_status(
        order_id: str,
        body: m.SetStatus,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Set the order's status (a cancel clears its holds; ``holds`` sets them)."""
        return act(
            "orders.set_status",
            world,
            key,
            rid,
            lambda b: SimulatedOrders(b).set_status(
                order_id, body.status, holds=_dump(body.holds), key=key
            ),
        )

    # --- inventory, customs, payment, carrier, notify -------------------------------------------

    @app.post(
        "/inventory/reservations",
        operation_id="inventory.reserve",
        tags=["inventory"],
        response_model=m.Reserved,
        responses=_REFUSED,
    )
    def reserve(
        body: m.Stock, key: Key, world: World_ = DEFAULT_WORLD, rid: RequestId = None
    ) -> JSONResponse:
        """Reserve stock; refused when fewer are available (never oversold)."""
        return act(
            "inventory.reserve",
            world,
            key,
            rid,
            lambda b: SimulatedInventory(b).reserve(body.warehouse_id, body.sku, body.qty, key=key),
        )

    @app.post(
        "/inventory/releases",
        operation_id="inventory.release",
        tags=["inventory"],
        response_model=m.Released,
        responses=_REFUSED,
    )
    def release(
        body: m.Stock, key: Key, world: World_ = DEFAULT_WORLD, rid: RequestId = None
    ) -> JSONResponse:
        """Release stock exdesk reserved; refused for more than it holds."""
        return act(
            "inventory.release",
            world,
            key,
            rid,
            lambda b: SimulatedInventory(b).release(body.warehouse_id, body.sku, body.qty, key=key),
        )

    @app.post(
        "/customs/orders/{order_id}/documents",
        operation_id="customs.attach_document",
        tags=["customs"],
        response_model=m.Attached,
        responses=_REFUSED,
    )
    def attach_document(
        order_id: str,
        body: m.Document,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Generate the document from the order and attach it."""
        return act(
            "customs.attach_document",
            world,
            key,
            rid,
            lambda b: SimulatedCustoms(b).attach_document(order_id, body.document, key=key),
        )

    @app.post(
        "/customs/orders/{order_id}/documents/detach",
        operation_id="customs.detach_document",
        tags=["customs"],
        response_model=m.Detached,
        responses=_REFUSED,
    )
    def detach_document(
        order_id: str,
        body: m.Document,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Take a document off the order."""
        return act(
            "customs.detach_document",
            world,
            key,
            rid,
            lambda b: SimulatedCustoms(b).detach_document(order_id, body.document, key=key),
        )

    @app.post(
        "/payment/orders/{order_id}/retry",
        operation_id="payment.retry",
        tags=["payment"],
        response_model=m.Captured,
        responses=_REFUSED,
    )
    def retry_payment(
        order_id: str,
        body: m.Nothing,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Retry the payment (captured, or a 409 saying why not)."""
        return act(
            "payment.retry", world, key, rid, lambda b: SimulatedPayment(b).retry(order_id, key=key)
        )

    @app.post(
        "/payment/orders/{order_id}/new-method-requests",
        operation_id="payment.request_new_method",
        tags=["payment"],
        response_model=m.Sent,
        responses=_REFUSED,
    )
    def request_new_method(
        order_id: str,
        body: m.Nothing,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Send the customer a link to pay another way."""
        return act(
            "payment.request_new_method",
            world,
            key,
            rid,
            lambda b: SimulatedPayment(b).request_new_method(order_id, key=key),
        )

    @app.post(
        "/payment/orders/{order_id}/refunds",
        operation_id="payment.refund",
        tags=["payment"],
        response_model=m.Refunded,
        responses=_REFUSED,
    )
    def refund(
        order_id: str,
        body: m.Refund,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Refund; refused in another currency or past what was paid, all refunds together."""
        return act(
            "payment.refund",
            world,
            key,
            rid,
            lambda b: SimulatedPayment(b).refund(order_id, body.amount, body.currency, key=key),
        )

    @app.post(
        "/carrier/orders/{order_id}/service",
        operation_id="carrier.change_service",
        tags=["carrier"],
        response_model=m.ServiceChanged,
        responses=_REFUSED,
    )
    def change_service(
        order_id: str,
        body: m.ChangeService,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Change the shipping service."""
        return act(
            "carrier.change_service",
            world,
            key,
            rid,
            lambda b: SimulatedCarrier(b).change_service(order_id, body.service, key=key),
        )

    @app.post(
        "/notify/orders/{order_id}/messages",
        operation_id="notify.send",
        tags=["notify"],
        response_model=m.Sent,
        responses=_REFUSED,
    )
    def send(
        order_id: str,
        body: m.Message,
        key: Key,
        world: World_ = DEFAULT_WORLD,
        rid: RequestId = None,
    ) -> JSONResponse:
        """Message the order's customer with ``template`` and its ``data``."""
        return act(
            "notify.send",
            world,
            key,
            rid,
            lambda b: SimulatedNotify(b).send(order_id, body.template, body.data, key=key),
        )

    # --- facts --------------------------------------------------------------------------------

    @app.post(
        "/facts/view",
        operation_id="facts.view",
        tags=["facts"],
        response_model=World,
        responses=_VIEW_REFUSED,
    )
    def view(order: Order, world: World_ = DEFAULT_WORLD, rid: RequestId = None) -> JSONResponse:
        """What the world knows that bears on the order (contract §2): every warehouse, stock of
        its SKUs and their substitutes (exdesk's reservations counted as reserved), their
        replenishment and catalog items, rates to its destination, FX, its events, the
        customer's recent orders, and the clock."""
        return act(
            "facts.view",
            world,
            None,
            rid,
            lambda b: b.facts.view(order).model_dump(mode="json", exclude_none=True),
        )
