"""`exdesk reply ORDER_ID TEXT`: a customer's reply to an order waiting on them (contract §8.2)."""

from __future__ import annotations

from typing import Annotated

import typer

from domain.errors import NotAllowed
from service import replies
from service.cli_common import DataDir, PolicyFile, opened, out
from service.cli_review import Token
from service.people import allow, authenticate
from service.render import safe

OUTCOMES = {
    "address_written": "the confirmed address was written to ship_to and the hold lifted",
    "asked_again": "the reply gives another address: the customer is asked to confirm it",
    "for_person": "a person must read it (review page: replies waiting for a person)",
}


def reply_command(
    order_id: Annotated[str, typer.Argument(help="The order the customer answers about.")],
    text: Annotated[str, typer.Argument(help="The customer's words, as they wrote them.")],
    world_id: Annotated[str, typer.Option("--world-id", help="The order's world.")] = "default",
    by: Annotated[
        str, typer.Option("--by", help="Who hands the reply over (without users on the desk).")
    ] = "operator",
    data_dir: DataDir = None,
    policy: PolicyFile = None,
    token: Token = None,
) -> None:
    """Hand a customer's reply to an order waiting on them: a model reads it (when one is
    set); a confirmation of the address asked about writes it and lifts the hold; anything
    else goes to a person."""
    with opened(data_dir, policy) as desk:
        token = token or desk.settings.token
        if token or desk.users.any():
            if not token:
                raise NotAllowed(
                    "this desk has users: hand replies over with your token (--token or "
                    "EXDESK_TOKEN)"
                )
            user = authenticate(desk, token)
            allow(user, "reply")
            by = user.name
        got, new = replies.receive(desk, world_id, order_id, text, by=by)
        desk.checkpoint()
        order = desk.orders.current(world_id, order_id)
        out.print(
            f"reply {got.reply_id}{'' if new else ' (already received)'}: {OUTCOMES[got.outcome]}"
        )
        if got.intent:
            out.print(f"read as {safe(got.intent)} (by the model): “{safe(got.quote or '')}”")
        out.print(f"why: {safe(got.detail or '')}")
        if order is not None:
            holds = ", ".join(h.kind for h in order.holds) or "none"
            out.print(f"order {safe(order_id)}: {order.status}, holds: {safe(holds)}")
