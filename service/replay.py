"""`exdesk audit replay`: the agent's replay and what-if over an installation's log."""

from __future__ import annotations

from pathlib import Path

from agent.context import Checkers
from agent.replay import Report, WhatIf, replay, what_if
from service.audit_access import Opened
from service.wiring import load_policy
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes


def checkers() -> Checkers:
    return Checkers(address=I18nAddressRules(), hs=HsCodes())


def replay_log(opened: Opened) -> Report:
    log = opened.log
    return replay(log.entries(), checkers(), log.clear_values)


def what_if_log(opened: Opened, policy_file: Path) -> WhatIf:
    log = opened.log
    return what_if(log.entries(), load_policy(policy_file), checkers(), log.clear_values)
