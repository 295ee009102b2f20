"""A local Slack Web API for tests, driven by the real slack-sdk through `base_url`.

    with SlackStandIn(token="xoxb-test") as slack:
        channel_id = slack.add_channel("#reports")
        WebClient(token="xoxb-test", base_url=slack.base_url).chat_postMessage(channel="#reports", text="hi")
        assert [m["text"] for m in slack.posts("#reports")] == ["hi"]

It keeps channels, messages (with their `metadata`, returned by conversations.history only with
`include_all_metadata`), thread replies and uploaded files, as Slack does. Methods: auth.test,
chat.postMessage, conversations.history / replies / list, files.getUploadURLExternal, the upload
URL it hands out, files.completeUploadExternal; and a slash command's `response_url`
(`response_url()` hands one out, `responses(url)` lists the JSON messages posted to it). Behaviours: `rate_limit` (HTTP 429 with
Retry-After), `fail` (an `{"ok": false, "error": ...}` answer, e.g. invalid_auth), `drop_after`
(do the call, then close the connection without answering: a lost response), `drop_before` (close
it without doing the call), `delay` (wait before
doing a call), and, like the real API, a wrong token gets invalid_auth and a channel the bot is not
in not_in_channel.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Call:
    """One Web API call as the stand-in received it (also the ones answered with 429; 0: dropped undone)."""

    method: str
    params: dict[str, Any]
    status: int


class SlackStandIn:
    """Serves the Slack Web API methods the deliver stage uses on 127.0.0.1."""

    def __init__(self, token: str = "xoxb-standin") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.channels: dict[str, dict[str, Any]] = {}  # id -> {"name", "member", "messages": [...]}
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> {"filename", "length", "data", "shared_to"}
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._drops: dict[str, int] = {}
        self._drops_before: dict[str, int] = {}
        self._delays: dict[str, float] = {}
        self._last_ts = 0.0
        self._responses: dict[str, list[dict[str, Any]]] = {}  # response_url path -> messages posted
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- set-up and inspection -------------------------------------------------------------------

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def response_url(self) -> str:
        """A slash command's response_url, as Slack puts in the command's body."""
        with self._lock:
            path = f"/commands/T0TEAM001/{len(self._responses) + 1}/hook"
            self._responses[path] = []
        return self.root + path

    def responses(self, url: str) -> list[dict[str, Any]]:
        """The messages posted to a response_url, in order."""
        return list(self._responses[urlsplit(url).path])

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/"

    def add_channel(self, name: str, *, member: bool = True) -> str:
        """Create channel `name` ("#reports"); the bot is in it unless `member` is False. Returns its ID."""
        channel_id = f"C{len(self.channels) + 1:09d}"
        self.channels[channel_id] = {"name": name.lstrip("#"), "member": member, "messages": []}
        return channel_id

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and Retry-After."""
        self._rate_limits[method] = [retry_after] * times

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with `{"ok": false, "error": error}`."""
        self._failures[method] = [error] * times

    def drop_after(self, method: str, times: int = 1_000_000) -> None:
        """Do the next `times` calls of `method` (a post is stored), then drop the connection unanswered."""
        self._drops[method] = times

    def drop_before(self, method: str, times: int = 1) -> None:
        """Drop the connection of the next `times` calls of `method` unanswered, without doing them."""
        self._drops_before[method] = times

    def delay(self, method: str, seconds: float) -> None:
        """Wait `seconds` before doing each call of `method`."""
        self._delays[method] = seconds

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given by name or ID."""
        return next(channel_id for channel_id, found in self.channels.items() if found is self._channel(channel))

    def posts(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel (by name or ID), oldest first."""
        return [m for m in self._channel(channel)["messages"] if m.get("thread_ts", m["ts"]) == m["ts"]]

    def replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The thread replies to message `ts`."""
        return [m for m in self._channel(channel)["messages"] if m.get("thread_ts") == ts and m["ts"] != ts]

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # --- the API -----------------------------------------------------------------------------------

    def _call(self, method: str, params: dict[str, Any], token: str | None) -> tuple[int | None, dict[str, Any], dict]:
        """Status (None: drop the connection unanswered), body and headers of one call."""
        time.sleep(self._delays.get(method, 0))
        with self._lock:
            if self._drops_before.get(method):
                self._drops_before[method] -= 1
                self.calls.append(Call(method, params, 0))
                return None, {}, {}
            answer = self._answer(method, params, token)
            if self._drops.get(method):
                self._drops[method] -= 1
                return None, {}, {}
            return answer

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any], dict]:
        retry_after = self._rate_limits.get(method, [])
        if retry_after:
            wait = retry_after.pop(0)
            self.calls.append(Call(method, params, 429))
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        self.calls.append(Call(method, params, 200))
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        failures = self._failures.get(method, [])
        if failures:
            return 200, {"ok": False, "error": failures.pop(0)}, {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        try:
            return 200, {"ok": True, **handler(params)}, {}
        except SlackError as error:
            return 200, {"ok": False, "error": str(error)}, {}

    def _auth_test(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://standin.slack.com/", "team": "Stand-in", "user": "abos", "user_id": "U0BOT",
                "bot_id": "B0BOT"}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802  (Slack's name)
        channel_id = self._member_channel(params.get("channel"), by_name=True)
        if not params.get("text") and not params.get("blocks"):
            raise SlackError("no_text")
        message = {"type": "message", "ts": self._ts(), "user": "U0BOT", "bot_id": "B0BOT",
                   "text": params.get("text", ""), "blocks": _json(params.get("blocks")) or [],
                   "metadata": _json(params.get("metadata"))}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.channels[channel_id]["messages"].append(message)
        return {"channel": channel_id, "ts": message["ts"], "message": _shown(message, with_metadata=False)}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._member_channel(params.get("channel"), by_name=False)
        oldest = float(params.get("oldest") or 0)
        found = [m for m in reversed(self.posts(channel_id)) if float(m["ts"]) > oldest]
        page, cursor = _page(found, params)
        metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        return {"messages": [_shown(m, with_metadata=metadata) for m in page], "has_more": bool(cursor),
                "response_metadata": {"next_cursor": cursor}}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._member_channel(params.get("channel"), by_name=False)
        parent = [m for m in self.channels[channel_id]["messages"] if m["ts"] == params.get("ts")]
        if not parent:
            raise SlackError("thread_not_found")
        page, cursor = _page(parent + self.replies(channel_id, params["ts"]), params)
        return {"messages": [_shown(m, with_metadata=False) for m in page], "has_more": bool(cursor),
                "response_metadata": {"next_cursor": cursor}}

    def _conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        every = [{"id": channel_id, "name": c["name"], "is_channel": True, "is_member": c["member"]}
                 for channel_id, c in self.channels.items()]
        page, cursor = _page(every, params)
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not params.get("filename") or not params.get("length"):
            raise SlackError("invalid_arguments")
        file_id = f"F{len(self.uploads) + 1:09d}"
        self.uploads[file_id] = {"filename": params["filename"], "length": int(params["length"]), "data": None,
                                 "shared_to": None, "thread_ts": None, "title": None}
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = _json(params.get("files")) or []
        channel_id = params.get("channel_id")
        if channel_id:
            self._member_channel(channel_id, by_name=False)
        completed = []
        for item in files:
            upload = self.uploads.get(item.get("id"))
            if upload is None or upload["data"] is None:
                raise SlackError("file_not_found")
            upload.update(title=item.get("title"), shared_to=channel_id, thread_ts=params.get("thread_ts"))
            completed.append({"id": item["id"], "name": upload["filename"], "title": item.get("title")})
        if channel_id:
            message = {"type": "message", "ts": self._ts(), "user": "U0BOT", "text": params.get("initial_comment", ""),
                       "files": completed, "metadata": None}
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            self.channels[channel_id]["messages"].append(message)
        return {"files": completed}

    def _upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        with self._lock:
            upload = self.uploads.get(file_id)
            if upload is None:
                return 404, "no such upload"
            upload["data"] = data
            return 200, f"OK - {len(data)}"

    # --- helpers -----------------------------------------------------------------------------------

    def _channel(self, channel: str) -> dict[str, Any]:
        for channel_id, found in self.channels.items():
            if channel in (channel_id, "#" + found["name"], found["name"]):
                return found
        raise KeyError(channel)

    def _member_channel(self, channel: str | None, *, by_name: bool) -> str:
        """The ID of a channel the bot may use: by ID, or (chat.postMessage) also by name."""
        for channel_id, found in self.channels.items():
            names = (channel_id, "#" + found["name"], found["name"]) if by_name else (channel_id,)
            if channel in names:
                if not found["member"]:
                    raise SlackError("not_in_channel")
                return channel_id
        raise SlackError("channel_not_found")

    def _ts(self) -> str:
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._serve(b"")

            def do_POST(self) -> None:  # noqa: N802
                self._serve(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _serve(self, body: bytes) -> None:
                url = urlsplit(self.path)
                if url.path.startswith("/upload/"):
                    status, text = standin._upload(url.path.rsplit("/", 1)[1], body)
                    return self._send(status, text.encode(), "text/plain", {})
                if url.path in standin._responses:  # a slash command's response_url: JSON messages
                    with standin._lock:
                        standin._responses[url.path].append(json.loads(body))
                    return self._send(200, b"ok", "text/plain", {})
                if not url.path.startswith("/api/"):
                    return self._send(404, b"{}", "application/json", {})
                params: dict[str, Any] = dict(parse_qsl(url.query))
                if body and "json" in (self.headers.get("Content-Type") or ""):
                    params.update(json.loads(body))
                elif body:
                    params.update(parse_qsl(body.decode()))
                auth = self.headers.get("Authorization") or ""
                token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.pop("token", None)
                status, payload, headers = standin._call(url.path.removeprefix("/api/"), params, token)
                if status is None:  # the call was done; its answer is lost with the connection
                    self.close_connection = True
                    return None
                self._send(status, json.dumps(payload).encode(), "application/json", headers)

            def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


class SlackError(Exception):
    """An error code the stand-in answers with, as Slack does: HTTP 200 and ok=false."""


def _json(value: Any) -> Any:
    """A JSON argument as slack-sdk sends it: already parsed (JSON body) or a string (form body)."""
    return json.loads(value) if isinstance(value, str) and value else value


def _shown(message: dict[str, Any], *, with_metadata: bool) -> dict[str, Any]:
    shown = {key: value for key, value in message.items() if key != "metadata"}
    if with_metadata and message.get("metadata"):
        shown["metadata"] = message["metadata"]
    return shown


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str]:
    """One page of `items` by `limit` and an offset `cursor`, and the next cursor ("" at the end)."""
    start = int(params.get("cursor") or 0)
    limit = int(params.get("limit") or 100)
    end = start + limit
    return items[start:end], str(end) if end < len(items) else ""
