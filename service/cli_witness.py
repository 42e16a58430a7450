"""`exdesk audit witness …` (the witness's side, run by an auditor on a machine the operators
do not control) and `exdesk audit witness-request / add-cosignature / witness-submit` (the
log's side). Requests and answers are the c2sp.org/tlog-witness bodies, as files or over HTTP.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated

import typer

from audit.errors import AuditError
from audit.merkle import Tree
from audit.note import COSIGNATURE_V1, NoteError, parse_vkey
from audit.witness import Witness, WitnessRefusal, parse_request, render_request
from domain.errors import ExdeskError
from service.audit_access import Opened
from service.cli_common import DataDir, fail, out
from service.render import safe

StateDir = Annotated[Path, typer.Option("--state", help="The witness's own state dir.")]
WitnessKey = Annotated[
    str, typer.Option("--witness-key", help="The witness's verifier key (cosignature/v1).")
]

witness_app = typer.Typer(
    no_args_is_help=True,
    help="Run a witness: cosign a log's checkpoints only when consistent with the last.",
)


def _witness(state: Path) -> Witness:
    try:
        return Witness(state)
    except ExdeskError as error:
        raise fail(str(error)) from error


@witness_app.command("init")
def witness_init(
    state: StateDir,
    name: Annotated[
        str, typer.Option("--name", help="The witness's name, e.g. auditor.example/w1")
    ],
) -> None:
    """Make a witness state dir with a new key; print the key for the log's witness policy."""
    try:
        witness = Witness.init(state, name)
    except (ExdeskError, NoteError) as error:
        raise fail(str(error)) from error
    sys.stdout.write(witness.verifier.vkey() + "\n")


@witness_app.command("follow")
def witness_follow(
    state: StateDir,
    log_key: Annotated[str, typer.Argument(help="The log's verifier key (`exdesk audit pubkey`).")],
) -> None:
    """Follow a log: cosign its checkpoints when they are signed by this key."""
    try:
        key = _witness(state).follow(log_key)
    except (ExdeskError, NoteError) as error:
        raise fail(str(error)) from error
    out.print(f"following {safe(key.name)}")


@witness_app.command("cosign")
def witness_cosign(
    state: StateDir,
    request: Annotated[Path, typer.Argument(help="An add-checkpoint request body ('-': stdin).")],
    answer: Annotated[
        Path | None, typer.Option("--out", help="Write the cosignature here (else stdout).")
    ] = None,
) -> None:
    """Check the request and cosign it, or refuse (exit 1) with the protocol's status."""
    body = sys.stdin.read() if str(request) == "-" else _read(request)
    try:
        line = _witness(state).add_checkpoint(body)
    except WitnessRefusal as refusal:
        raise fail(f"refused ({refusal.status}): {refusal}", code=1) from refusal
    except ExdeskError as error:
        raise fail(str(error)) from error
    if answer is None:
        sys.stdout.write(line)
    else:
        answer.write_text(line, encoding="utf-8")


@witness_app.command("show")
def witness_show(
    state: StateDir,
    origin: Annotated[str, typer.Argument(help="The log's origin (the checkpoints' first line).")],
) -> None:
    """Print the latest checkpoint this witness cosigned for a log (give it to `--trusted`)."""
    checkpoint = _witness(state).latest(origin)
    if checkpoint is None:
        raise fail(f"this witness has cosigned nothing for {origin!r}")
    sys.stdout.write(checkpoint)


@witness_app.command("serve")
def witness_serve(
    state: StateDir,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8473,
) -> None:
    """Serve the tlog-witness HTTP API: POST /add-checkpoint, GET /<sha256(origin)>/checkpoint."""
    server = make_server(_witness(state), host, port)
    out.print(f"witness {safe(server.witness.name)} on http://{host}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class WitnessServer(ThreadingHTTPServer):
    witness: Witness


def make_server(witness: Witness, host: str, port: int) -> WitnessServer:
    server = WitnessServer((host, port), _Handler)
    server.witness = witness
    return server


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/add-checkpoint":
            self._send(404, "not found\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= 1 << 16:
            self._send(400, "a request body of 1 byte to 64 KiB\n")
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        try:
            line = self.server.witness.add_checkpoint(body)
        except WitnessRefusal as refusal:
            kind = "text/x.tlog.size" if refusal.status == 409 else "text/plain; charset=utf-8"
            self._send(refusal.status, refusal.body, kind)
            return
        self._send(200, line)

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[1] == "checkpoint":
            for origin in self.server.witness.logs():
                if hashlib.sha256(origin.encode("utf-8")).hexdigest() == parts[0]:
                    latest = self.server.witness.latest(origin)
                    if latest is not None:
                        self._send(200, latest)
                        return
        self._send(404, "not found\n")

    def _send(self, status: int, body: str, kind: str = "text/plain; charset=utf-8") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("witness: " + (format % args) + "\n")


# --- the log's side ----------------------------------------------------------------------------

Opener = Callable[[Path | None], AbstractContextManager[Opened]]


def request_for(opened: Opened, witness_key: str, old: int | None = None) -> str:
    """An add-checkpoint request for the newest checkpoint, from the size the witness last
    cosigned (as the log's cosignatures record it, unless ``old`` is given)."""
    witness = parse_vkey(witness_key)
    if witness.kind != COSIGNATURE_V1:
        raise AuditError(f"{witness.vkey()} is not a witness key (cosignature/v1, type 0x04)")
    log = opened.log
    checkpoint = log.latest_checkpoint(cosigned=False)
    if checkpoint is None:
        raise AuditError("the log has no checkpoint yet: nothing to witness")
    old = log.witnessed_size(witness) if old is None else old
    proof = Tree(log.leaf_hashes(checkpoint.size)).consistency(old) if old > 0 else []
    return render_request(old, proof, checkpoint.render())


def register_witness_commands(app: typer.Typer, opener: Opener) -> None:
    app.add_typer(witness_app, name="witness")

    @app.command("witness-request")
    def witness_request(
        witness_key: WitnessKey,
        data_dir: DataDir = None,
        answer: Annotated[
            Path | None, typer.Option("--out", help="Write the request here (else stdout).")
        ] = None,
        old: Annotated[
            int | None, typer.Option("--old", help="The size the witness says it last cosigned.")
        ] = None,
    ) -> None:
        """Write an add-checkpoint request for a witness: the newest checkpoint and a
        consistency proof from the last one that witness cosigned."""
        with opener(data_dir) as opened:
            try:
                body = request_for(opened, witness_key, old)
            except (ExdeskError, NoteError, ValueError) as error:
                raise fail(str(error)) from error
        if answer is None:
            sys.stdout.write(body)
        else:
            answer.write_text(body, encoding="utf-8")

    @app.command("add-cosignature")
    def add_cosignature(
        answer: Annotated[Path, typer.Argument(help="The witness's answer (cosignature lines).")],
        request: Annotated[Path, typer.Option("--request", help="The request it answers.")],
        witness_key: WitnessKey,
        data_dir: DataDir = None,
    ) -> None:
        """Store a witness's cosignature beside the checkpoint it cosigns (checked first)."""
        with opener(data_dir) as opened:
            try:
                checkpoint = parse_request(_read(request)).checkpoint
                stored = opened.log.add_cosignatures(
                    checkpoint, _read(answer), parse_vkey(witness_key)
                )
            except (ExdeskError, NoteError) as error:
                raise fail(str(error)) from error
        out.print(
            f"{len(stored)} cosignature(s) stored on the checkpoint of size {checkpoint.size}"
        )

    @app.command("witness-submit")
    def witness_submit(
        url: Annotated[str, typer.Option("--url", help="The witness's submission prefix.")],
        witness_key: WitnessKey,
        data_dir: DataDir = None,
    ) -> None:
        """Ask a witness over HTTP (tlog-witness) and store its cosignature."""
        with opener(data_dir) as opened:
            try:
                stored = submit(opened, url, witness_key)
            except (ExdeskError, NoteError) as error:
                raise fail(str(error)) from error
        out.print(f"{safe(url)} cosigned the checkpoint of size {stored}")


def submit(opened: Opened, url: str, witness_key: str) -> int:
    """POST an add-checkpoint request; on 409 ask again from the size the witness names."""
    old: int | None = None
    for _ in range(2):
        body = request_for(opened, witness_key, old)
        status, answer = _post(url.rstrip("/") + "/add-checkpoint", body)
        if status == 409 and answer.strip().isdigit() and old is None:
            old = int(answer.strip())
            continue
        if status != 200:
            raise AuditError(f"the witness refused ({status}): {answer.strip()}")
        checkpoint = parse_request(body).checkpoint
        opened.log.add_cosignatures(checkpoint, answer, parse_vkey(witness_key))
        return checkpoint.size
    raise AuditError("the witness refused twice (409): its view of the log keeps moving")


def _post(url: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode("utf-8"), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as error:
        raise AuditError(f"{url}: cannot reach the witness ({error})") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"{path}: cannot read it ({error})") from error
