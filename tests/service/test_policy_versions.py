"""Policy versions in the store (issue 15): import a draft, activate it and the next order is
decided under it, with no restart and no flag; roll back; the contract's floors; who may;
every change audited with it. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from domain.errors import InputError, NotAllowed
from domain.models import Order, World
from domain.policy import PolicyError, default_policy
from service import policies, usecases
from service.cli import app as cli
from service.people import add_user
from service.policy_book import bucket
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.factories import example

POLICY_TEXT = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
# Stricter than the default: a delay notice needs two approvals.
STRICT = POLICY_TEXT.replace('notify_delay = "L1"', 'notify_delay = "L2"').replace(
    'version = "2026-12-06.1"', 'version = "2026-12-06.2-strict"'
)
assert STRICT != POLICY_TEXT


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            base = os.environ.get(PG_ENV)
            if not base:
                pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
            database = in_schema(base, stack.enter_context(scratch_schema(base, "exdesk_pol")))
        yield Settings(data_dir=tmp_path / "d", database_url=database)


@pytest.fixture
def app(settings: Settings) -> Iterator[Exdesk]:
    desk = Exdesk(settings)
    try:
        yield desk
    finally:
        desk.close()


def _runner(settings: Settings) -> CliRunner:
    env = {"EXDESK_DATABASE_URL": settings.database_url} if settings.database_url else {}
    return CliRunner(env=env)


def _delay_order(order_id: str) -> dict[str, Any]:
    case = example("EX-delay-009")
    order = dict(case["order"], order_id=order_id)
    for event in case["world"]["events"]:
        if event["order_id"] == case["order"]["order_id"]:
            case["world"]["events"].append(dict(event, order_id=order_id))
    return {"order": order, "world": case["world"]}


def _entries(app: Exdesk, prefix: str = "policy.") -> list[tuple[str, str, dict[str, Any]]]:
    """The entries of policy changes (not the agent's policy.recorded, made as it decides)."""
    return [
        (e.actor, e.event, e.payload)
        for e in app.audit.entries()
        if e.event.startswith(prefix) and e.event != "policy.recorded"
    ]


def test_activate_then_rollback_changes_the_next_order_of_exdesk_run(
    settings: Settings, tmp_path: Path
) -> None:
    """The issue's 'done means': import, activate, and the next `exdesk run` on the same data
    dir decides under the new version; rollback restores the earlier one."""
    runner = _runner(settings)
    data = ["--data-dir", str(settings.data_dir)]

    def ok(*args: str) -> str:
        result = runner.invoke(cli, [*args, *data], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    token = ok("users", "add", "Sam Lee", "--role", "supervisor").strip().splitlines()[-1]
    world = tmp_path / "world.json"

    def run(order_id: str) -> dict[str, Any]:
        case = _delay_order(order_id)
        world.write_text(json.dumps(case["world"]))
        orders = tmp_path / f"{order_id}.jsonl"
        orders.write_text(json.dumps(case["order"]) + "\n")
        out = tmp_path / f"{order_id}.out.jsonl"
        ok("run", str(orders), "--world", str(world), "--out", str(out))
        (report,) = [json.loads(line) for line in out.read_text().splitlines()]
        (exception,) = report["exceptions"]
        return dict(exception["decision"])

    assert run("D-1") == {"status": "executed", "strategy": "notify_delay", "tier": "L1"}
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT)
    imported = ok(
        "policy", "import", str(strict), "--comment", "delays need people", "--token", token
    )
    assert "not active yet" in imported
    version = imported.strip().splitlines()[-1]
    assert version == "2"
    assert run("D-2")["tier"] == "L1"  # a draft decides nothing

    refused = runner.invoke(cli, ["policy", "activate", version, *data])
    assert refused.exit_code == 2 and "supervisor's token" in refused.output
    assert "is active" in ok("policy", "activate", version, "--token", token)
    decided = run("D-3")
    assert (decided["status"], decided["tier"]) == ("awaiting_approval", "L2")

    listed = ok("policy", "list")
    assert "2026-12-06.2-strict@" in listed and "delays need people" in listed
    assert "policy version 2 (2026-12-06.2-strict@" in listed.splitlines()[-1]

    ok("policy", "rollback", "--token", token)
    assert run("D-4") == {"status": "executed", "strategy": "notify_delay", "tier": "L1"}

    app = Exdesk(settings)
    try:
        events = [(actor, event) for actor, event, _ in _entries(app)]
        assert events == [
            ("person:Sam Lee", "policy.imported"),
            ("person:Sam Lee", "policy.activated"),
            ("person:Sam Lee", "policy.rolled_back"),
        ]
        activated = _entries(app)[1][2]
        assert (activated["version"], activated["previous"]) == (2, 1)
        assert app.audit.verify().ok
    finally:
        app.close()


def test_a_running_process_takes_up_an_activation_by_another_without_restart(
    settings: Settings,
) -> None:
    running, other = Exdesk(settings), Exdesk(settings)
    try:
        sam, _ = add_user(other, "Sam Lee", "supervisor")
        case = _delay_order("R-1")
        usecases.load_world(running, "w", World.model_validate(case["world"]))
        first = usecases.handle(running, "w", Order.model_validate(case["order"]))
        assert [d.tier.value for d in first.decisions.values()] == ["L1"]

        done = policies.import_policy(other, STRICT, "strict.toml", by=sam)
        policies.activate(other, done.version.id, by=sam)
        nxt = Order.model_validate(_delay_order("R-2")["order"])
        usecases.load_world(running, "w", World.model_validate(_delay_order("R-2")["world"]))
        second = usecases.handle(running, "w", nxt)
        assert [d.tier.value for d in second.decisions.values()] == ["L2"]
        assert running.policy.ref == done.version.ref == running.policy_for("R-2").ref

        policies.rollback(other, by=sam)
        case3 = _delay_order("R-3")
        usecases.load_world(running, "w", World.model_validate(case3["world"]))
        third = usecases.handle(running, "w", Order.model_validate(case3["order"]))
        assert [d.tier.value for d in third.decisions.values()] == ["L1"]
        assert running.policy.ref == default_policy().ref
    finally:
        running.close()
        other.close()


WEAKER = [
    ('notify_delay = "L2"', 'notify_delay = "L1"', "tiers.notify_delay", None),  # allowed
    ('cancel_order = "L3"', 'cancel_order = "L2"', "tiers.cancel_order", "below the contract"),
    ("l1_usd = 50", "l1_usd = 80", "limits.l1_usd", "above the contract's L1 limit of 50"),
    (
        'embargoed = ["KP", "IR", "SY", "CU"]',
        'embargoed = ["KP", "IR", "SY"]',
        "customs.embargoed",
        "CU is not embargoed",
    ),
    (
        '"backorder:late" = "L2"',
        '"backorder:late" = "L1"',
        "tier_floors.backorder:late",
        "below the contract's L2",
    ),
    ('hs_prefix = "8507"', 'hs_prefix = "8506"', "customs.required_by_hs", "battery_declaration"),
]


@pytest.mark.parametrize(("old", "new", "field", "problem"), WEAKER)
def test_a_draft_weaker_than_the_contract_is_refused_naming_the_field(
    app: Exdesk, old: str, new: str, field: str, problem: str | None
) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    assert old in STRICT
    text = STRICT.replace(old, new)
    if problem is None:
        assert policies.import_policy(app, text, "draft.toml", by=sam).new
        return
    with pytest.raises(PolicyError) as raised:
        policies.import_policy(app, text, "draft.toml", by=sam)
    message = str(raised.value)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if new in t)
    assert message.startswith("draft.toml line ") and f": {field}: " in message, message
    assert problem in message and "never weaker" in message
    if field != "customs.required_by_hs":
        assert message.startswith(f"draft.toml line {line}: "), message
    assert [v.id for v in app.policy_store.list()] == [1] and _entries(app) == []


def test_who_may_import_and_who_may_put_a_version_in_force(app: Exdesk) -> None:
    tokens = {}
    sam, tokens["sam"] = add_user(app, "Sam Lee", "supervisor")
    alice, _ = add_user(app, "alice", "approver", by=sam)
    olive, _ = add_user(app, "olive", "operator", by=sam)
    with pytest.raises(NotAllowed, match="token of an approver or supervisor"):
        policies.import_policy(app, STRICT, "s.toml", by=None)
    with pytest.raises(NotAllowed, match="olive is operator; to import policies"):
        policies.import_policy(app, STRICT, "s.toml", by=olive)
    done = policies.import_policy(app, STRICT, "s.toml", by=alice, comment="  ")
    assert done.new and done.version.author == "alice" and done.version.comment is None
    again = policies.import_policy(app, STRICT, "other-name.toml", by=sam)
    assert (again.new, again.version.id) == (False, done.version.id)  # same content: same
    for who in (None, alice, olive):
        with pytest.raises(NotAllowed, match="supervisor"):
            policies.activate(app, done.version.id, by=who)
        with pytest.raises(NotAllowed, match="supervisor"):
            policies.rollback(app, by=who)
    with pytest.raises(InputError, match="nothing to roll back to"):
        policies.rollback(app, by=sam)
    with pytest.raises(InputError, match="active already"):
        policies.activate(app, 1, by=sam)
    assert app.policies.state.active == 1
    assert [e for _, e, _ in _entries(app)] == ["policy.imported"]


def test_rollback_goes_back_step_by_step(app: Exdesk) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    two = policies.import_policy(app, STRICT, "a.toml", by=sam).version.id
    three_text = STRICT.replace("l1_usd = 50", "l1_usd = 20")
    three = policies.import_policy(app, three_text, "b.toml", by=sam).version.id
    policies.activate(app, two, by=sam)
    policies.activate(app, three, by=sam)
    assert app.policies.state.active == three
    assert policies.rollback(app, by=sam).active == two
    assert policies.rollback(app, by=sam).active == 1
    with pytest.raises(InputError, match="nothing to roll back to"):
        policies.rollback(app, by=sam)
    states = [s.action for s in app.policy_store.history()]
    assert states == ["seed", "activate", "activate", "rollback", "rollback"]
    # each change and its entry: one for one
    assert len(_entries(app, "policy.activated")) + len(_entries(app, "policy.rolled_back")) == 4


def test_a_pinned_policy_file_is_stored_but_a_weaker_one_never_seeds_the_store(
    settings: Settings, tmp_path: Path
) -> None:
    weak = tmp_path / "weak.toml"
    weak.write_text(POLICY_TEXT.replace('cancel_order = "L3"', 'cancel_order = "L2"'))
    pinned = Exdesk(settings.model_copy(update={"policy_file": weak}))
    try:
        assert pinned.policies.pinned and pinned.policy.tiers["cancel_order"].value == "L2"
        versions = pinned.policy_store.list()
        active = pinned.policy_store.get(pinned.policies.state.active)
        assert active.digest == default_policy().digest  # the shipped one seeded the store
        assert {v.digest for v in versions} == {default_policy().digest, pinned.policy.digest}
        sam, _ = add_user(pinned, "Sam Lee", "supervisor")
        weak_id = next(v.id for v in versions if v.digest == pinned.policy.digest)
        with pytest.raises(PolicyError, match=f"policy version {weak_id} line .*cancel_order"):
            policies.activate(pinned, weak_id, by=sam)
    finally:
        pinned.close()
    plain = Exdesk(settings)
    try:
        assert not plain.policies.pinned and plain.policy.digest == default_policy().digest
    finally:
        plain.close()


def test_a_rollout_keeps_each_order_on_one_version_and_takes_its_share(app: Exdesk) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    two = policies.import_policy(app, STRICT, "a.toml", by=sam).version.id
    ids = [f"ORD-{n:05d}" for n in range(1000)]
    policies.set_candidate(app, two, mode="rollout", percent=25, by=sam)
    strict_ref = app.policies.version_policy(two).ref
    first = {i: app.policy_for(i).ref for i in ids}
    share = sum(ref == strict_ref for ref in first.values())
    assert 200 <= share <= 300, share  # about 25 %
    other = Exdesk(app.settings)  # another process: the same orders on the same versions
    try:
        assert {i: other.policy_for(i).ref for i in ids} == first
        assert {i: app.policy_for(i).ref for i in ids} == first  # and every time
    finally:
        other.close()
    assert all((bucket(two, i) < 25) == (first[i] == strict_ref) for i in ids)
    policies.set_candidate(app, two, mode="rollout", percent=5, by=sam)
    five = {i for i in ids if app.policy_for(i).ref == strict_ref}
    assert five <= {i for i in ids if first[i] == strict_ref}  # 5 % inside 25 %
    policies.kill(app, by=sam)
    assert {app.policy_for(i).ref for i in ids} == {default_policy().ref}
    with pytest.raises(InputError, match="nothing to stop"):
        policies.kill(app, by=sam)
    with pytest.raises(InputError, match="--percent"):
        policies.set_candidate(app, two, mode="rollout", percent=0, by=sam)
    assert [e for _, e, _ in _entries(app)] == [
        "policy.imported",
        "policy.rolled_out",
        "policy.rolled_out",
        "policy.killed",
    ]
