"""`exdesk audit verify` and `audit replay` from another machine: the workers' shared log read
with nothing but ``--database-url`` and the log's public key, from a data dir that does not
exist and a user with no key of the installation; nothing is created there. On PostgreSQL
(when EXDESK_TEST_DATABASE_URL is set) and on SQLite by its URL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import Settings
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.service.test_processes import EXDESK, Install, _crash_scenario


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk' / 'exdesk.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    with scratch_schema(base, "exdesk_any_machine") as schema:
        yield in_schema(base, schema)


def _env(config: Path) -> dict[str, str]:
    """An environment with no exdesk setting at all, and a config dir of its own (where
    exdesk looks for the installation's signing key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXDESK_")}
    return {**env, "XDG_CONFIG_HOME": str(config), "EXDESK_EMBEDDING_MODEL": "hash"}


def test_the_shared_log_verifies_and_replays_from_another_machine(
    database: str, tmp_path: Path
) -> None:
    here = Install(
        tmp_path / "desk", {**_env(tmp_path / "config-here"), "EXDESK_DATABASE_URL": database}
    )
    world, orders, _ = _crash_scenario(tmp_path, per_template=1)  # 7 orders
    code, output = here.call("run", str(orders), "--world", str(world), "--out", os.devnull)
    assert code == 0, output
    code, vkey = here.call("audit", "pubkey")
    assert code == 0, vkey
    vkey = vkey.strip()
    code, pem = here.call("audit", "pubkey", "--pem")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----"), pem
    (tmp_path / "log.pub").write_text(pem, encoding="ascii")

    # another machine: no EXDESK_ variable, another (absent) data dir, no key of the log
    there = Install(tmp_path / "elsewhere", _env(tmp_path / "config-there"))
    url = ("--database-url", database)
    code, output = there.call("audit", "verify", *url, "--public-key", vkey)
    assert code == 0 and output.startswith("ok: "), output
    code, output = there.call("audit", "verify", *url, "--public-key", str(tmp_path / "log.pub"))
    assert code == 0 and output.startswith("ok: "), output
    code, output = there.call("audit", "replay", *url)
    assert code == 0, output
    count = output.split(" of ")[0].strip()
    assert f"{count} of {count} decisions reproduced" in output and int(count) >= 7, output
    code, output = there.call("audit", "export", *url, "--out", str(tmp_path / "log.jsonl"))
    assert code == 0, output
    checked = subprocess.run(  # the export alone: no database, no data dir
        [EXDESK, "audit", "verify-export", str(tmp_path / "log.jsonl"), "--public-key", vkey],
        env=there.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0 and checked.stdout.startswith("ok: "), checked

    # without the key there is nothing to check the signatures with: said, not guessed
    code, output = there.call("audit", "verify", *url)
    assert code == 2 and "give --public-key" in output and "Traceback" not in output, output
    # a database that holds no log: an error, and nothing made
    empty = f"sqlite:///{tmp_path / 'nothing.db'}"
    code, output = there.call("audit", "replay", "--database-url", empty)
    assert code == 2 and "holds no exdesk schema" in output, output
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "config-there").exists()

    # a machine given the log's signing key: its newest checkpoint, the one written here
    code, here_cp = here.call("audit", "checkpoint", "--json")
    assert code == 0, here_cp
    key = {"EXDESK_SIGNING_KEY": str(_signing_key(tmp_path / "config-here", database))}
    code, there_cp = there.call("audit", "checkpoint", *url, "--json", extra=key)
    assert code == 0 and json.loads(there_cp) == json.loads(here_cp), there_cp
    assert not (tmp_path / "config-there").exists()


def _signing_key(config: Path, database: str) -> Path:
    """Where exdesk keeps the installation's key for ``database`` under the config dir."""
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(config)
    try:
        return Settings(database_url=database).signing_key_path()
    finally:
        if saved is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = saved


@pytest.mark.parametrize(
    "command", [["serve"], ["events", "relay"], ["audit", "checkpoint"], ["worker"]]
)
def test_the_commands_another_machine_runs_take_the_database_url(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--database-url" in result.output, result.output
