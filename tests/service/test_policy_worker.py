"""Issue 15's 'done means' for workers: a running `exdesk worker` (one process, never
restarted) decides each order under the policy version in force when it takes the order up:
`exdesk policy activate` and `exdesk policy rollback`, run by other processes, take effect at
its next order, with no restart and no flag. Over NATS JetStream on 127.0.0.1 (skipped, saying
so, when none answers), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.wiring import Exdesk
from tests.service.stream_support import OnStream, on_stream_for
from tests.service.test_policy_versions import STRICT, _delay_order

WAIT_S = 120.0  # for one order to be decided by the worker


@pytest.fixture(params=["sqlite", "postgresql"])
def on_stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnStream]:
    yield from on_stream_for(request.param, tmp_path)


def _ranked(app: Exdesk, order_id: str) -> dict[str, Any] | None:
    """The ``plans.ranked`` entry of the order's run, once the worker has made it."""
    found = [
        e.payload
        for e in app.audit.entries()
        if e.event == "plans.ranked" and e.payload.get("order_id") == order_id
    ]
    return found[-1] if found else None


def _decided(app: Exdesk, worker: subprocess.Popen[str], order_id: str) -> tuple[str, str]:
    """(the policy ref that decided the order, the top plan's tier), waiting (bounded) for the
    running worker to decide it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ranked = _ranked(app, order_id)
        if ranked is not None:
            (plans,) = ranked["plans"].values()
            return str(ranked["policy"]), str(plans[0]["tier"])
        assert worker.poll() is None, worker.communicate()[0]  # the worker must still run
        time.sleep(0.3)
    raise AssertionError(f"the worker did not decide {order_id} within {WAIT_S:.0f} s")


def test_a_running_worker_takes_up_activate_and_rollback_without_restart(
    on_stream: OnStream, tmp_path: Path
) -> None:
    install = on_stream.install

    def ok(*args: str) -> str:
        code, output = install.call(*args)
        assert code == 0, output
        return output

    token = ok("users", "add", "Sam Lee", "--role", "supervisor").strip().splitlines()[-1]
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT)
    version = ok("policy", "import", str(strict), "--token", token).strip().splitlines()[-1]

    def publish(order_id: str) -> None:
        case = {"id": f"case-{order_id}", **_delay_order(order_id)}
        path = tmp_path / f"{order_id}.jsonl"
        path.write_text(json.dumps(case) + "\n")
        code, output = on_stream.publish(str(path), "--cases")
        assert code == 0 and "1 events published" in output, output

    worker = on_stream.worker("--until-idle", "300")
    app = install.app()
    try:
        default_ref = app.policy.ref
        strict_ref = app.policies.version_policy(int(version)).ref
        publish("W-1")
        assert _decided(app, worker, "W-1") == (default_ref, "L1")

        ok("policy", "activate", version, "--token", token)
        publish("W-2")
        assert _decided(app, worker, "W-2") == (strict_ref, "L2")

        ok("policy", "rollback", "--token", token)
        publish("W-3")
        assert _decided(app, worker, "W-3") == (default_ref, "L1")
        changes = [
            (e.actor, e.event)
            for e in app.audit.entries()
            if e.event in ("policy.activated", "policy.rolled_back")
        ]
        assert changes == [
            ("person:Sam Lee", "policy.activated"),
            ("person:Sam Lee", "policy.rolled_back"),
        ]
    finally:
        app.close()
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=120)[0]
    assert worker.returncode == 0, output
    assert "3 orders handled (3 with exceptions)" in output, output
