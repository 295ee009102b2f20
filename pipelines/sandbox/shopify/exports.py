"""The sandbox's Shopify bulk exports, in a process of their own (docs/sandbox-shopify.md, "Process").

`BulkOperations` starts this module (`python -m pipelines.sandbox.shopify.exports`) at a server's first
export and writes its commands to it, one JSON object a line:

- `{"start": <number>, "store": ..., "query": ..., "workspace": ..., "scopes": [...], "group": ...,
  "path": ...}`: run that export (`bulk.export`) in a thread of this process;
- `{"cancel": <number>}`: stop it at its next batch of roots.

What the exports do comes back on stdout, one JSON object a line, each with the export's `number`:
`{"event": "snapshot", "clock": ...}` once its snapshot is taken, `{"event": "progress", "roots": ...,
"objects": ...}` after each batch, and at the end `"completed"`, `"canceled"` or `"failed"` with the
counts. A failed export's traceback goes to stderr. The process ends with its input: when the server
that started it is gone.
"""

from __future__ import annotations

import sys
import threading
import traceback
from typing import Any

import orjson

from pipelines.sandbox.shopify import bulk
from pipelines.sandbox.shopify.api import schema


def main() -> None:
    built = schema()
    cancels: dict[int, threading.Event] = {}
    said = threading.Lock()

    def say(number: int, event: str, **facts: Any) -> None:
        with said:
            sys.stdout.buffer.write(orjson.dumps({"number": number, "event": event, **facts}) + b"\n")
            sys.stdout.buffer.flush()

    def run(command: dict[str, Any], canceled: threading.Event) -> None:
        number, counts = command["start"], {"roots": 0, "objects": 0}

        def progress(roots: int, objects: int) -> None:
            counts.update(roots=roots, objects=objects)
            say(number, "progress", **counts)

        try:
            finished = bulk.export(built, command, snapshot=lambda clock: say(number, "snapshot", clock=clock),
                                   progress=progress, canceled=canceled.is_set)
            say(number, "completed" if finished else "canceled", **counts)
        except Exception:  # the server marks the operation FAILED, as Shopify does on its internal errors
            traceback.print_exc()
            say(number, "failed", **counts)

    for line in sys.stdin.buffer:
        command = orjson.loads(line)
        if "cancel" in command:
            cancels.get(command["cancel"], threading.Event()).set()
            continue
        cancels[command["start"]] = threading.Event()
        threading.Thread(target=run, args=(command, cancels[command["start"]]), daemon=True).start()


if __name__ == "__main__":
    main()
