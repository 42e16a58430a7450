"""The people who work at the desk: adding them (with a token shown once), listing, changing
their role, revoking, and who a token belongs to. What each role may do is here too, in one
table.

Who may change the people: a supervisor, with their token. Only the very first supervisor is
added without one (the bootstrap; said so in the output and in the log). Each change and the
audit entry that records it (naming the supervisor who made it) commit in one transaction:
both or neither.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from domain.approvals import AGENT_ACTORS, approvals_of, person
from domain.errors import InputError, NotAllowed
from domain.models import ROLES, Proposal, Role, User, Vote
from service.wiring import Exdesk
from store.db import write

# What each role is for. Auditors read; operators submit orders and resolve customer holds;
# approvers and supervisors decide (and read); supervisors add, change and revoke people.
CAN: dict[str, frozenset[Role]] = {
    "read": frozenset({"auditor", "operator", "approver", "supervisor"}),
    "submit": frozenset({"operator"}),
    "resolve": frozenset({"operator"}),
    # a customer's reply (contract §8.2): operators, and those above them
    "reply": frozenset({"operator", "approver", "supervisor"}),
    "decide": frozenset({"approver", "supervisor"}),
    "people": frozenset({"supervisor"}),
    # policy versions: approvers and supervisors import drafts; supervisors put one in force
    "import policies": frozenset({"approver", "supervisor"}),
    "change the policy in force": frozenset({"supervisor"}),
}
BOOTSTRAP = "bootstrap"  # the actor of the first supervisor's entry: nobody's token


def allow(user: User, what: str) -> None:
    """NotAllowed unless ``user``'s role may do ``what`` (a key of ``CAN``)."""
    if user.role not in CAN[what]:
        roles = " or ".join(sorted(CAN[what]))
        raise NotAllowed(f"{user.name} is {user.role}; to {what} you must be {roles}")


def _role(role: str) -> Role:
    if role not in ROLES:
        raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def _who_may(app: Exdesk, conn: Connection) -> str:
    names = [u.name for u in app.users.supervisors(conn)]
    return "a supervisor (" + ", ".join(names) + ")" if names else "a supervisor"


def acting_supervisor(app: Exdesk, conn: Connection, by: User | None, doing: str) -> User:
    """The supervisor ``by`` as the store has them now (their token may have been revoked or
    their role changed since they signed in); NotAllowed, saying who may, otherwise."""
    may = _who_may(app, conn)
    if by is None:
        raise NotAllowed(
            f"to {doing} you need a supervisor's token (--token or EXDESK_TOKEN; over HTTP "
            f"Authorization: Bearer TOKEN): ask {may}"
        )
    current = app.users.find(by.person, conn)
    if current is None or current.role != "supervisor":
        raise NotAllowed(f"{by.name} is not an active supervisor; to {doing}, ask {may}")
    return current


def add_user(app: Exdesk, name: str, role: str, *, by: User | None = None) -> tuple[User, str]:
    """Add a person with one role; returns them and their API token (shown once). ``by``: the
    supervisor adding them; None only for the desk's first supervisor (who is then added by
    nobody: ``added_by`` None)."""
    shown = " ".join(name.split())
    who = person(shown)
    if not who:
        raise InputError("a user needs a name with at least one visible character")
    if who in AGENT_ACTORS:
        raise InputError(f"{shown!r} is the agent's name; people cannot take it")
    wanted = _role(role)

    def work(conn: Connection) -> tuple[User, str]:
        app.users.serialize(conn)
        bootstrap = by is None and not app.users.ever_a_supervisor(conn)
        if bootstrap and wanted != "supervisor":
            raise NotAllowed(
                "this desk has no supervisor yet: add one first (`exdesk users add NAME --role "
                "supervisor`, the only person added without a token), then add the others "
                "with that supervisor's token"
            )
        adder = None if bootstrap else acting_supervisor(app, conn, by, f"add {shown!r}")
        earlier = app.users.find(who, conn)
        if earlier is not None:  # (the people are changed one at a time: no race)
            raise InputError(
                f"{shown!r} is already a user (as {earlier.name!r}); "
                "`exdesk users revoke` them first to give them a new token"
            )
        user, token = app.users.add(
            conn, name=shown, person=who, role=wanted, added_by=adder.name if adder else None
        )
        payload = {
            "user": user.name,
            "role": user.role,
            "added_by": user.added_by,
            "bootstrap": bootstrap,
        }
        actor = f"person:{adder.name}" if adder else BOOTSTRAP
        app.audit.append(actor, "user.added", payload, conn=conn)
        return user, token

    return write(app.engine, work)


def _last_supervisor(app: Exdesk, conn: Connection, user: User, doing: str) -> None:
    others = [u for u in app.users.supervisors(conn) if u.person != user.person]
    if user.role == "supervisor" and not others:
        raise NotAllowed(
            f"{user.name} is the desk's only supervisor: add another supervisor before you "
            f"{doing}, or nobody could add or revoke people any more"
        )


def revoke_user(app: Exdesk, name: str, *, by: User | None = None) -> User:
    """Revoke a person's token (a supervisor's doing; never the last supervisor's)."""

    def work(conn: Connection) -> User:
        app.users.serialize(conn)
        supervisor = acting_supervisor(app, conn, by, f"revoke {name!r}")
        target = app.users.get(person(name), conn)
        _last_supervisor(app, conn, target, f"revoke {target.name}")
        user = app.users.revoke(conn, target.person)
        app.audit.append(
            f"person:{supervisor.name}",
            "user.revoked",
            {"user": user.name, "role": user.role},
            conn=conn,
        )
        return user

    return write(app.engine, work)


def set_role(app: Exdesk, name: str, role: str, *, by: User | None = None) -> User:
    """Give a person another role (a supervisor's doing); the supervisor is then who gave
    them that role, as when they are added."""
    wanted = _role(role)

    def work(conn: Connection) -> User:
        app.users.serialize(conn)
        supervisor = acting_supervisor(app, conn, by, f"change {name!r}")
        target = app.users.get(person(name), conn)
        if target.role == wanted:
            raise InputError(f"{target.name} is {wanted} already")
        if wanted != "supervisor":
            _last_supervisor(app, conn, target, f"make {target.name} {wanted}")
        user = app.users.set_role(conn, target.person, wanted, by=supervisor.name)
        app.audit.append(
            f"person:{supervisor.name}",
            "user.changed",
            {"user": user.name, "role_before": target.role, "role": user.role},
            conn=conn,
        )
        return user

    return write(app.engine, work)


def adder(user: User | None) -> str:
    """Who gave ``user`` their role, as the policy's ``distinct_adders`` compares them."""
    if user is None or user.added_by is None:
        return "nobody (the first supervisor, or added before exdesk kept who added whom)"
    return user.added_by


def check_adders(
    app: Exdesk, conn: Connection, proposal: Proposal, votes: Sequence[Vote], name: str
) -> None:
    """With the policy's ``distinct_adders`` on for the proposal's tier, refuse an approval
    by someone given their role by the same person as an approver so far (NotAllowed, saying
    who may approve instead)."""
    rule = app.policy_for(proposal.order_id).approvals.get(proposal.tier)
    if rule is None or not rule.distinct_adders:
        return
    key = f"approvals.{proposal.tier.value}.distinct_adders"
    voter = app.users.find(person(name), conn)
    if voter is None:
        raise NotAllowed(
            f"the policy ({key}) needs to know who added each approver, and {name} is not one "
            "of the desk's people: add them with `exdesk users add` and vote with a token"
        )
    mine = adder(voter)
    for earlier in approvals_of(proposal, votes):
        if person(earlier.by) == voter.person:
            continue  # the same person again: check_vote says so
        them = app.users.find(person(earlier.by), conn)
        theirs = adder(them)
        # Whoever adds a person is shown their token: an approver and the supervisor who
        # gave them their role are one person's doing, whichever of them votes first.
        for giver, given in ((voter, them), (them, voter)):
            if given is not None and giver is not None and given.added_by == giver.name:
                raise NotAllowed(
                    f"{giver.name} gave {given.name} their role; the policy ({key}) needs "
                    f"this plan's approvers to be independent of each other: an approver or "
                    f"supervisor whom neither {voter.name} nor {earlier.by} added may approve it"
                )
        if theirs == mine:
            raise NotAllowed(
                f"{earlier.by} and {name} were both given their role by {mine}; the policy "
                f"({key}) needs this plan's approvers added by different people: an approver "
                f"or supervisor whom someone other than {mine} added may approve it"
            )


def authenticate(app: Exdesk, token: str | None) -> User:
    """The active user a token belongs to; NotAllowed when there is none."""
    user = app.users.by_token(token) if token else None
    if user is None:
        raise NotAllowed("a valid token is needed (Authorization: Bearer TOKEN)")
    return user
