"""A local OpenAI-compatible chat-completions server for tests, driven by the real openai client.

    with OpenAIStandIn() as llm:
        llm.reply(lambda request: "Net sales $1,980.00 ...")   # or a plain string
        summarize(facts, LlmSettings(base_url=llm.base_url, api_key="test-key"))
        assert llm.requests[0].json["model"] == "gpt-4o-mini"

Behaviours: `reply` (text, or a function of the request's JSON, which may return a whole assistant
message instead, e.g. a tool call built with `tool_call`), `delay` (sleep before answering, to
outlast the client's timeout), `fail` (HTTP errors, e.g. 500) and `malformed` (a body that is not
a chat completion). Every request is recorded, including ones that time out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    json: dict[str, Any]

    @property
    def facts(self) -> dict[str, Any]:
        return OpenAIStandIn.facts_of(self.json)


class OpenAIStandIn:
    """Serves POST /v1/chat/completions on 127.0.0.1 with a behaviour chosen by the test."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.prompt_tokens = 1200
        self.completion_tokens = 150
        self._answer: Callable[[dict[str, Any]], str | dict[str, Any]] = lambda _request: "OK."
        self._delay = 0.0
        self._failures: list[int] = []
        self._malformed = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def facts_of(request: dict[str, Any]) -> dict[str, Any]:
        """The facts JSON of a request: `summaries.build_messages` sends it as the last (user) message."""
        return json.loads(request["messages"][-1]["content"])

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reply(self, answer: str | Callable[[dict[str, Any]], str | dict[str, Any]]) -> None:
        """Answer with `answer`, or with `answer(request_json)` (text, or an assistant message)."""
        self._answer = answer if callable(answer) else (lambda _request: answer)

    def delay(self, seconds: float) -> None:
        """Wait this long before answering each request."""
        self._delay = seconds

    def fail(self, status: int = 500, times: int = 1_000_000) -> None:
        """Answer the next `times` requests with HTTP `status` (then behave normally)."""
        self._failures = [status] * times

    def malformed(self) -> None:
        """Answer 200 with JSON that is no chat completion."""
        self._malformed = True

    def __enter__(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()  # cuts short any request still sleeping in `delay`
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with standin._lock:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    standin.requests.append(Recorded(self.path, headers, body))
                    status = standin._failures.pop(0) if standin._failures else None
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if standin._delay and standin._stopping.wait(standin._delay):
                    return
                if status is not None:
                    error = {"message": "stand-in failure", "type": "server_error"}
                    return self._send(status, {"error": error})
                if standin._malformed:
                    return self._send(200, {"unexpected": True})
                return self._send(200, standin._completion(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timed out) before the answer

        return Handler

    @staticmethod
    def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str = "call_1") -> dict[str, Any]:
        """An assistant message calling one tool (arguments as JSON, or a raw string)."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}]}

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self._answer(request)
        message = answer if isinstance(answer, dict) else {"role": "assistant", "content": answer}
        return {
            "id": f"chatcmpl-standin-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model", "unknown"),
            "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                         "message": message}],
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                      "total_tokens": self.prompt_tokens + self.completion_tokens},
        }
