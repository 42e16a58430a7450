"""Witness policies in the C2SP ``tlog-policy`` format.

    log exdesk.local/audit/5f0c1e2a9b3d4c6e+1a2b3c4d+AX…
    witness auditor-a auditor-a.example/w1+cafe0123+BA…
    witness auditor-b auditor-b.example/w1+0123cafe+BA…
    group auditors 1 auditor-a auditor-b
    quorum auditors

``log`` lines add trusted log keys; ``witness`` lines name cosigner keys (vkeys of type 0x04);
``group NAME all|any|K MEMBER…`` needs K of its members; ``quorum NAME|none`` is the rule a
checkpoint's cosignatures must meet. Names must be defined before use, each member once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audit.checkpoint import SignedCheckpoint
from audit.errors import AuditError
from audit.note import COSIGNATURE_V1, ED25519, NoteError, Verifier, parse_vkey


class PolicyFileError(AuditError):
    """A witness policy that cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class Group:
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    logs: tuple[Verifier, ...]
    witnesses: dict[str, Verifier]
    groups: dict[str, Group]
    quorum: str  # a witness, a group, or "none"

    def satisfied(self, checkpoint: SignedCheckpoint) -> bool:
        """True when the checkpoint's valid cosignatures meet the quorum."""
        if self.quorum == "none":
            return True
        signed = {name for name, key in self.witnesses.items() if checkpoint.note.signed_by(key)}
        return self._holds(self.quorum, signed)

    def cosigners(self, checkpoint: SignedCheckpoint) -> list[str]:
        return sorted(n for n, k in self.witnesses.items() if checkpoint.note.signed_by(k))

    def _holds(self, name: str, signed: set[str]) -> bool:
        if name in self.witnesses:
            return name in signed
        group = self.groups[name]
        return sum(self._holds(m, signed) for m in group.members) >= group.threshold

    def describe(self) -> str:
        if self.quorum == "none":
            return "quorum none"
        if self.quorum in self.witnesses:
            return f"quorum: witness {self.quorum}"
        group = self.groups[self.quorum]
        return f"quorum {self.quorum}: {group.threshold} of {', '.join(group.members)}"


def parse_policy(text: str, source: str) -> WitnessPolicy:
    logs: list[Verifier] = []
    witnesses: dict[str, Verifier] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    used: set[str] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        words = line.split()
        keyword, args = words[0], words[1:]
        if keyword == "log":
            key = _vkey(args, 1, where, "log <vkey> [url]")
            if key.kind != ED25519:
                raise PolicyFileError(f"{where}: a log key must be an Ed25519 note key (0x01)")
            logs.append(key)
        elif keyword == "witness":
            if len(args) not in (2, 3):
                raise PolicyFileError(f"{where}: write `witness <name> <vkey> [url]`")
            name = _new_name(args[0], witnesses, groups, where)
            key = _vkey(args[1:], 1, where, "witness <name> <vkey> [url]")
            if key.kind != COSIGNATURE_V1:
                raise PolicyFileError(
                    f"{where}: witness {name}'s key is not a cosignature/v1 key (type 0x04); "
                    "use the key `exdesk audit witness init` printed"
                )
            if any(k.public == key.public for k in witnesses.values()):
                raise PolicyFileError(f"{where}: witness {name}'s key is listed twice")
            witnesses[name] = key
        elif keyword == "group":
            name, group = _group(args, witnesses, groups, used, where)
            groups[name] = group
        elif keyword == "quorum":
            if quorum is not None:
                raise PolicyFileError(f"{where}: a second quorum line; a policy has one")
            if len(args) != 1 or (args[0] != "none" and args[0] not in {*witnesses, *groups}):
                raise PolicyFileError(
                    f"{where}: write `quorum <name>` naming a witness or group defined above, "
                    "or `quorum none`"
                )
            quorum = args[0]
        else:
            raise PolicyFileError(
                f"{where}: unknown line {keyword!r}; use log, witness, group or quorum"
            )
    if quorum is None:
        raise PolicyFileError(f"{source}: no quorum line; add `quorum <group or witness>`")
    return WitnessPolicy(tuple(logs), witnesses, groups, quorum)


def load_policy(path: Path) -> WitnessPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{path}: cannot read the witness policy ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise PolicyFileError(f"{path}: not UTF-8 text") from None
    return parse_policy(text, str(path))


def _vkey(args: list[str], at_most: int, where: str, usage: str) -> Verifier:
    if not 1 <= len(args) <= at_most + 1:
        raise PolicyFileError(f"{where}: write `{usage}`")
    try:
        return parse_vkey(args[0])
    except NoteError as exc:
        raise PolicyFileError(f"{where}: {exc}") from None


def _new_name(
    name: str, witnesses: dict[str, Verifier], groups: dict[str, Group], where: str
) -> str:
    if name == "none" or name in witnesses or name in groups:
        raise PolicyFileError(f"{where}: the name {name!r} is taken; pick another")
    return name


def _group(
    args: list[str],
    witnesses: dict[str, Verifier],
    groups: dict[str, Group],
    used: set[str],
    where: str,
) -> tuple[str, Group]:
    if len(args) < 3:
        raise PolicyFileError(f"{where}: write `group <name> all|any|<k> <member>...`")
    name = _new_name(args[0], witnesses, groups, where)
    members = tuple(args[2:])
    for member in members:
        if member not in witnesses and member not in groups:
            raise PolicyFileError(f"{where}: {member!r} is not a witness or group defined above")
        if member in used:
            raise PolicyFileError(f"{where}: {member!r} is already a member of a group")
    if len(set(members)) != len(members):
        raise PolicyFileError(f"{where}: a member is listed twice")
    rule = args[1]
    if rule == "all":
        threshold = len(members)
    elif rule == "any":
        threshold = 1
    elif rule.isdigit() and 1 <= int(rule) <= len(members):
        threshold = int(rule)
    else:
        raise PolicyFileError(
            f"{where}: the threshold {rule!r} must be all, any or a number from 1 to {len(members)}"
        )
    used.update(members)
    return name, Group(threshold, members)
