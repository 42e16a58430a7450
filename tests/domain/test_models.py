"""The contract's models: RFC 3339 timestamps, bounded ids, positive FX rates, availability."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from domain.models import MAX_ID, Order, StockRow, World
from tests.factories import example


def _order(**changes: Any) -> dict[str, Any]:
    raw = example("EX-clean-001")["order"]
    raw.update(changes)
    return raw


def _world(**changes: Any) -> dict[str, Any]:
    raw = example("EX-clean-001")["world"]
    raw.update(changes)
    return raw


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.value.errors()]


# --- timestamps --------------------------------------------------------------------------


def test_the_example_order_and_world_are_valid() -> None:
    assert Order.model_validate(_order()).order_id
    assert World.model_validate(_world()).now.utcoffset() is not None


@pytest.mark.parametrize("value", [12345, 1_700_000_000, 12.5, True])
def test_a_bare_number_is_no_timestamp(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Order.model_validate(_order(created_at=value))
    ((loc, message),) = _errors(info)
    assert loc == "created_at"
    assert f"{value!r} is not an RFC 3339 timestamp" in message
    assert "write it as text with an offset" in message


def test_a_bare_number_is_refused_wherever_a_timestamp_goes() -> None:
    raw = _order()
    raw["fulfillment"]["promised_by"] = 12345
    with pytest.raises(ValidationError, match="not an RFC 3339 timestamp"):
        Order.model_validate(raw)
    with pytest.raises(ValidationError, match="not an RFC 3339 timestamp"):
        World.model_validate(_world(now=12345))


@pytest.mark.parametrize("value", ["2026-11-20T07:00:00", "2026-11-20 07:00:00", "2026-11-20"])
def test_a_timestamp_without_an_offset_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Order.model_validate(_order(created_at=value))
    ((loc, message),) = _errors(info)
    assert loc == "created_at"
    assert "timezone" in message


@pytest.mark.parametrize(
    "value", ["2026-11-20T07:00:00+08:00", "2026-11-20T07:00:00Z", "2026-11-20T07:00:00.5-05:30"]
)
def test_timestamps_with_an_offset_are_read(value: str) -> None:
    created = Order.model_validate(_order(created_at=value)).created_at
    assert created.utcoffset() is not None


# --- ids ---------------------------------------------------------------------------------


def test_ids_are_at_most_200_characters() -> None:
    assert MAX_ID == 200
    assert Order.model_validate(_order(order_id="A" * 200)).order_id == "A" * 200
    with pytest.raises(ValidationError) as info:
        Order.model_validate(_order(order_id="A" * 201))
    ((loc, message),) = _errors(info)
    assert loc == "order_id"
    assert "at most 200 characters" in message


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("lines", 0, "line_id"), "lines.0.line_id"),
        (("lines", 0, "sku"), "lines.0.sku"),
        (("customer", "id"), "customer.id"),
        (("fulfillment", "warehouse_id"), "fulfillment.warehouse_id"),
    ],
)
def test_every_id_of_an_order_is_bounded(path: tuple[str | int, ...], where: str) -> None:
    for size, ok in ((200, True), (201, False)):
        raw = _order()
        target: Any = raw
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = "x" * size
        if ok:
            Order.model_validate(raw)
            continue
        with pytest.raises(ValidationError) as info:
            Order.model_validate(raw)
        assert where in [loc for loc, _ in _errors(info)]


def test_warehouse_and_stock_ids_of_the_world_are_bounded() -> None:
    world = _world()
    world["warehouses"][0]["id"] = "W" * 201
    with pytest.raises(ValidationError, match="at most 200 characters"):
        World.model_validate(world)
    with pytest.raises(ValidationError, match="at most 200 characters"):
        StockRow(warehouse_id="W" * 201, sku="S", on_hand=1)
    with pytest.raises(ValidationError, match="at most 200 characters"):
        StockRow(warehouse_id="W", sku="S" * 201, on_hand=1)
    assert StockRow(warehouse_id="W" * 200, sku="S" * 200, on_hand=1).available == 1


# --- FX rates ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [-1, 0, "-0.5", "NaN", "Infinity"])
def test_fx_rates_must_be_positive(rate: object) -> None:
    with pytest.raises(ValidationError) as info:
        World.model_validate(_world(fx_to_usd={"USD": 1, "EUR": rate}))
    assert all(loc.startswith("fx_to_usd") for loc, _ in _errors(info))


def test_fx_rate_errors_name_the_currency() -> None:
    for rate in (-1, 0):
        with pytest.raises(ValidationError, match="EUR: a rate to USD must be a positive number"):
            World.model_validate(_world(fx_to_usd={"EUR": rate}))


def test_positive_fx_rates_are_kept() -> None:
    world = World.model_validate(_world(fx_to_usd={"EUR": "1.08", "USD": 1}))
    assert str(world.fx_to_usd["EUR"]) == "1.08"


# --- availability ------------------------------------------------------------------------


def test_availability_has_no_floor() -> None:
    assert StockRow(warehouse_id="W", sku="S", on_hand=2, reserved=5).available == -3
    assert StockRow(warehouse_id="W", sku="S", on_hand=5, reserved=2).available == 3
    assert StockRow(warehouse_id="W", sku="S", on_hand=0).available == 0
