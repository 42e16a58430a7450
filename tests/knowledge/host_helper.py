"""A process that hosts shared case-memory folders for the tests (the other process).

    python -m tests.knowledge.host_helper

Reads folder paths from stdin, one a line; hosts each (``SharedFolderMemory.serve``) and
answers ``hosting PATH`` (or ``client PATH`` when another process already held it). Closes
every memory when stdin closes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from knowledge.embedder import HashEmbedder
from knowledge.shared import SharedFolderMemory


def main() -> None:
    memories = []
    for line in sys.stdin:
        folder = Path(line.strip())
        memory = SharedFolderMemory(folder, HashEmbedder(), timeout=30)
        memories.append(memory)
        role = "hosting" if memory.serve() else "client"
        print(f"{role} {folder}", flush=True)
    for memory in memories:
        memory.close()


if __name__ == "__main__":
    main()
