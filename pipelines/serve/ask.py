"""The ask API: `POST /v1/workspaces/{id}/ask` with `{"question": "..."}` and the workspace's bearer token,
`GET /v1/workspaces/{id}/suggestions` and `GET /v1/workspaces/{id}/history` with the same token.

The workspace is the URL's, and the token must be that workspace's (`ask_token_env` in
workspaces.yaml); the question never chooses it. A missing or wrong token, a token of another
workspace, an unknown workspace or one without a token all get the same 401 after the same work,
so answers do not tell which workspaces exist. The answer is `pipelines.ask.answer.Answer` as JSON
(docs/ask.md), stored in insights.questions under the caller's `conversation`; a follow-up builds on
that conversation's last answer, or on the `query` sent as `previous`. No business logic runs here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import asdict
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines.ask.chart import find
from pipelines.ask.history import converse, recent, suggestions
from pipelines.ask.query import Query
from pipelines.ask.resolve import MAX_QUESTION_CHARS
from pipelines.settings import LlmSettings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspaces

MAX_BODY_BYTES = 16 * 1024
MAX_CONVERSATION_CHARS = 100
MAX_HISTORY = 100
DEFAULT_CONVERSATION = "default"  # API callers that name no conversation share one
NO_TOKEN = hashlib.sha256(b"no workspace has this token").digest()


class AskApi:
    """The ask route's state: each workspace's token digest, read once, and the warehouse."""

    def __init__(self, workspaces: Workspaces, warehouse: Warehouse, env: dict[str, str],
                 llm: LlmSettings | None = None, charts: Path | None = None):
        self.workspaces = {workspace.id: workspace for workspace in workspaces}
        self.tokens = {workspace.id: hashlib.sha256(token.encode()).digest() for workspace in workspaces
                       if (token := workspace.ask_token(env))}
        self.warehouse = warehouse
        self.llm = llm  # with a key, questions are read by the LLM (docs/ask.md, "With an LLM")
        self.charts = charts  # where series' PNGs are written and served from

    def _unauthorized(self, request: Request) -> Response | None:
        """The 401 for a request without the URL's workspace's token; None when it has it."""
        workspace_id = request.path_params["workspace"]
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        # compared in constant time against the workspace's token, or a token nobody has
        allowed = hmac.compare_digest(given, self.tokens.get(workspace_id, NO_TOKEN))
        if scheme.lower() != "bearer" or not token.strip() or not allowed or workspace_id not in self.tokens:
            return JSONResponse({"error": "unauthorized"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="abos ask"'})
        return None

    async def ask(self, request: Request) -> Response:
        if (refused := self._unauthorized(request)) is not None:
            return refused
        workspace_id = request.path_params["workspace"]
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        try:
            asked = json.loads(body)
            question = asked["question"]
            # a follow-up sends the previous answer's query, or names its conversation
            previous = Query.model_validate(asked["previous"]) if asked.get("previous") else None
            conversation = asked.get("conversation") or DEFAULT_CONVERSATION
            if not isinstance(conversation, str) or len(conversation) > MAX_CONVERSATION_CHARS:
                raise ValueError("conversation")
        except (ValueError, KeyError, TypeError, AttributeError):
            question = None
        if not isinstance(question, str) or not question.strip():
            return JSONResponse({"error": 'send {"question": "...", "previous": <an answer\'s query, optional>, '
                                          '"conversation": "<up to 100 characters, optional>"} as JSON'},
                                status_code=400)
        if len(question) > MAX_QUESTION_CHARS:
            return JSONResponse({"error": f"ask in under {MAX_QUESTION_CHARS} characters"}, status_code=400)
        answer = await run_in_threadpool(functools.partial(
            converse, question, self.workspaces[workspace_id], self.warehouse, conversation=f"api:{conversation}",
            via="api", previous=previous, llm=self.llm, charts=self.charts))
        if answer.chart:  # the file's URL, not its path on this machine
            answer.chart = str(request.url_for("ask_chart", workspace=workspace_id, name=Path(answer.chart).name))
        return JSONResponse(json.loads(json.dumps(asdict(answer), default=str)))

    async def chart(self, request: Request) -> Response:
        """`GET .../charts/<question_id>.png`: an answer's chart. Its name is the question's random
        128-bit id, so the URL itself is the permission (chat clients fetch images without headers)."""
        found = None if self.charts is None else find(self.charts, request.path_params["workspace"],
                                                      request.path_params["name"])
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(found.read_bytes(), media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    async def suggestions(self, request: Request) -> Response:
        """`GET .../suggestions`: questions to ask, from recent anomalies and the pack."""
        if (refused := self._unauthorized(request)) is not None:
            return refused
        found = await run_in_threadpool(suggestions, self.warehouse, self.workspaces[request.path_params["workspace"]])
        return JSONResponse({"suggestions": [asdict(suggestion) for suggestion in found]})

    async def history(self, request: Request) -> Response:
        """`GET .../history?limit=20&conversation=...`: the workspace's questions, newest first."""
        if (refused := self._unauthorized(request)) is not None:
            return refused
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_HISTORY:
            return JSONResponse({"error": f"limit: a number from 1 to {MAX_HISTORY}"}, status_code=400)
        conversation = request.query_params.get("conversation")
        found = await run_in_threadpool(functools.partial(
            recent, self.warehouse, request.path_params["workspace"], limit=limit,
            conversation=None if conversation is None else f"api:{conversation}"))
        return JSONResponse({"questions": [asked.to_dict() for asked in found]})
