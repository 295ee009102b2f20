"""The outbox: where reports and operator alerts go when no Slack token or SMTP host is configured.

Files live under `<ABOS_HOME>/outbox/`: one folder per workspace and report week holding `.eml` files
(the exact message that would be sent) and Slack JSON payloads (the exact `chat.postMessage` body,
and the chart upload), and `_operator/` for operator alerts. Every file is written whole and then
renamed into place, so writing one again replaces it and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipelines.settings import Settings

OPERATOR_FOLDER = "_operator"  # workspace ids start with a letter or digit, so this never clashes


def report_folder(settings: Settings, workspace_id: str, week: str) -> Path:
    """The outbox folder of one workspace's report week."""
    return settings.outbox_dir / workspace_id / week


def email_path(settings: Settings, workspace_id: str, week: str, recipient: str) -> Path:
    return report_folder(settings, workspace_id, week) / f"email-{_safe(recipient)}.eml"


def slack_path(settings: Settings, workspace_id: str, week: str, channel: str) -> Path:
    return report_folder(settings, workspace_id, week) / f"slack-{_safe(channel)}.json"


def operator_path(settings: Settings, stamp: str, title: str) -> Path:
    return settings.outbox_dir / OPERATOR_FOLDER / f"{stamp}-{_safe(title)[:60]}.json"


def write_file(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    return write_file(path, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode())


def outbox_files(settings: Settings, *, workspace_id: str | None = None, run_id: str | None = None) -> list[Path]:
    """The outbox files of one workspace (all its weeks), of one run, or of everything.

    A run's files are those the delivery log records as delivered to the outbox by that run.
    """
    if run_id is not None:
        from pipelines.deliver.log import DeliveryLog

        rows = DeliveryLog(settings.warehouse).outbox_paths(run_id=run_id, workspace_id=workspace_id)
        return [Path(path) for path in rows]
    root = settings.outbox_dir / workspace_id if workspace_id else settings.outbox_dir
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


def _safe(text: str) -> str:
    """A file-name-safe form of a channel, address or title."""
    return re.sub(r"[^A-Za-z0-9@._-]+", "-", text).strip("-.") or "x"
