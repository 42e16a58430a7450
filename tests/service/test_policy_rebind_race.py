"""A policy activation racing the votes that complete the proposals it decides again, four
processes at once (issue 15): whatever the interleaving, each plan either ran once, under the
version its approvals were given for, or is void and ran nothing; a vote that comes too late
is refused with a clear message; state and audit log agree. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess

from domain.models import Order, ProposalStatus, World
from service import policies, usecases
from service.people import add_user
from tests.service.test_policy_versions import STRICT, _delay_order
from tests.service.test_processes import EXDESK, Install, _check_consistent, install  # noqa: F401

ORDERS = [f"RACE-{n}" for n in range(6)]


def test_an_activation_races_the_votes_that_complete_its_proposals(
    install: Install,  # noqa: F811
) -> None:
    app = install.app()
    try:
        sam, tokens = add_user(app, "Sam Lee", "supervisor")
        voters = {"alice": "", "bob": "", "carol": "", "dave": ""}
        people = {}
        for name in voters:
            people[name], voters[name] = add_user(app, name, "approver", by=sam)
        strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
        policies.activate(app, strict.id, by=sam)  # delay notices wait for two approvals
        pids = []
        for order_id in ORDERS:
            case = _delay_order(order_id)
            usecases.load_world(app, "w", World.model_validate(case["world"]))
            result = usecases.handle(app, "w", Order.model_validate(case["order"]))
            (pid,) = result.pending.values()
            usecases.vote(app, pid, by=None, role=None, decision="approve", user=people["alice"])
            pids.append(pid)
    finally:
        app.close()

    data = ["--data-dir", str(install.data_dir)]

    def votes(name: str, mine: list[str]) -> list[str]:
        return [
            " ".join([EXDESK, "review", "approve", p, "--token", voters[name], *data]) for p in mine
        ]

    scripts = [
        votes("bob", pids[0:2]),
        [" ".join([EXDESK, "policy", "activate", "1", "--token", tokens, *data])],
        votes("carol", pids[2:4]),
        votes("dave", pids[4:6]),
    ]
    procs = [
        subprocess.Popen(
            ["sh", "-c", "; ".join(f"{line}; echo rc=$?" for line in script)],
            env=install.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for script in scripts
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert "Traceback" not in "".join(outputs), outputs
    assert "rc=0" in outputs[1] and "is active" in outputs[1], outputs[1]
    for output in (outputs[0], outputs[2], outputs[3]):
        for answer in output.split("rc=")[:-1]:
            assert "executed" in answer or " is void" in answer or "approval void" in answer, output

    app = install.app()
    try:
        entries = _check_consistent(app)  # tool calls logged = stored; verifies; none stuck
        notified = {
            e.payload["args"].get("order_id")
            for e in entries
            if e.event == "tool.called" and e.payload["tool"] == "notify"
        }
        executed = 0
        for pid in pids:
            proposal = app.review.get(pid)
            assert proposal.status in (ProposalStatus.EXECUTED, ProposalStatus.VOID), proposal
            ran = proposal.order_id in notified
            assert ran == (proposal.status is ProposalStatus.EXECUTED), proposal
            executed += ran
        activated = [e for e in entries if e.event == "policy.activated"][-1]
        void_by_change = [
            e
            for e in entries
            if e.event == "approval.void"
            and e.payload.get("policy_state") == activated.payload["state"]
        ]
        assert activated.payload["proposals_void"] == len(void_by_change)
        for entry in void_by_change:  # voided by the change: nothing of theirs ran after it
            assert app.review.get(entry.payload["proposal_id"]).status is ProposalStatus.VOID
        print(f"{executed} executed, {len(void_by_change)} void by the change, of {len(pids)}")
    finally:
        app.close()
