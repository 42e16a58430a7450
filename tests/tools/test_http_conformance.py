"""The HTTP backends against the ports' conformance spec, over the reference shop on 127.0.0.1:
as they are, and with faults injected into the shop (5xx before and after acting, timeouts
before and after acting, slow answers) on a share of the requests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from store.db import make_engine
from tests.tools.conformance import PortsBackend, PortsConformance
from tests.tools.shop_server import TEST_LEASH, HttpPorts, Shop, serve_shop
from tools.reference_server import Fault


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    path: Path = tmp_path_factory.mktemp("shop") / "shop.db"
    engine = make_engine(f"sqlite:///{path}")
    with serve_shop(engine) as served:
        yield served
    engine.dispose()


class TestHttpBackend(PortsConformance):
    @pytest.fixture
    def backend(self, shop: Shop) -> Iterator[PortsBackend]:
        shop.arm()
        ports = HttpPorts(shop)
        yield ports
        ports.close()


# Faults on a share of the requests, each kind at its own rhythm, so that in a run of requests
# every kind happens. A short timeout keeps the injected ones cheap; on a loaded machine it may
# also cut off an answer that was only slow, which is one more fault to survive. The circuit
# stays closed here (it has tests of its own).
CHAOS_LEASH = replace(TEST_LEASH, timeout_s=0.5, retries=4, breaker_failures=1000)
TIMEOUT = CHAOS_LEASH.timeout_s + 0.3
CHAOS = (
    Fault(mode="fail-before", status=503, every=5, times=0),
    Fault(mode="fail-after", status=500, every=7, times=0),
    Fault(mode="delay-after", seconds=0.1, every=8, times=0),  # slow, within the timeout
    Fault(op="inventory.reserve", mode="delay-after", seconds=TIMEOUT, every=9, times=0),
    Fault(op="orders.place_hold", mode="delay-before", seconds=TIMEOUT, every=6, times=0),
    Fault(op="orders.get", mode="fail-before", status=502, every=11, times=0),
    Fault(op="facts.view", mode="fail-after", status=504, every=13, times=0),
)


class TestHttpBackendUnderFaults(PortsConformance):
    """The same spec while the shop fails, loses answers and answers slowly: retries under
    the same key make every call act once and answer as if nothing had gone wrong."""

    @pytest.fixture
    def backend(self, shop: Shop) -> Iterator[PortsBackend]:
        shop.arm(*CHAOS)
        ports = HttpPorts(shop, leash=CHAOS_LEASH)
        yield ports
        ports.close()
        shop.arm()


def test_the_faults_happened_and_were_retried(shop: Shop) -> None:
    """The run above met every kind of fault, and the backends retried under the same key."""
    seen = shop.requests()
    fired = {r["fault"] for r in seen if r["fault"]}
    assert fired >= {"fail-before", "fail-after", "delay-before", "delay-after"}
    tries: dict[str, set[str]] = {}
    for r in seen:
        if r["key"] and r["request_id"]:
            tries.setdefault(r["request_id"], set()).add(r["key"])
    retried = [rid for rid in tries if sum(r["request_id"] == rid for r in seen) > 1]
    assert retried, "no call was retried"
    assert all(len(tries[rid]) == 1 for rid in retried), "a retry carried another key"
