"""The ask API: `POST /v1/workspaces/{id}/ask` with `{"question": "..."}` and the workspace's bearer token.

The workspace is the URL's, and the token must be that workspace's (`ask_token_env` in
workspaces.yaml); the question never chooses it. A missing or wrong token, a token of another
workspace, an unknown workspace or one without a token all get the same 401 after the same work,
so answers do not tell which workspaces exist. The answer is `pipelines.ask.answer.Answer` as JSON
(docs/ask.md); a follow-up sends the previous answer's `query` as `previous`. No business logic
runs here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines.ask.answer import ask
from pipelines.ask.query import Query
from pipelines.ask.resolve import MAX_QUESTION_CHARS
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspaces

MAX_BODY_BYTES = 16 * 1024
NO_TOKEN = hashlib.sha256(b"no workspace has this token").digest()


class AskApi:
    """The ask route's state: each workspace's token digest, read once, and the warehouse."""

    def __init__(self, workspaces: Workspaces, warehouse: Warehouse, env: dict[str, str]):
        self.workspaces = {workspace.id: workspace for workspace in workspaces}
        self.tokens = {workspace.id: hashlib.sha256(token.encode()).digest() for workspace in workspaces
                       if (token := workspace.ask_token(env))}
        self.warehouse = warehouse

    async def ask(self, request: Request) -> Response:
        workspace_id = request.path_params["workspace"]
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        # compared in constant time against the workspace's token, or a token nobody has
        allowed = hmac.compare_digest(given, self.tokens.get(workspace_id, NO_TOKEN))
        if scheme.lower() != "bearer" or not token.strip() or not allowed or workspace_id not in self.tokens:
            return JSONResponse({"error": "unauthorized"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="abos ask"'})
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        try:
            asked = json.loads(body)
            question = asked["question"]
            # a follow-up sends the previous answer's query; it is validated like any query
            previous = Query.model_validate(asked["previous"]) if asked.get("previous") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            question = None
        if not isinstance(question, str) or not question.strip():
            return JSONResponse({"error": 'send {"question": "...", "previous": <an answer\'s query, optional>} '
                                          "as JSON"}, status_code=400)
        if len(question) > MAX_QUESTION_CHARS:
            return JSONResponse({"error": f"ask in under {MAX_QUESTION_CHARS} characters"}, status_code=400)
        answer = await run_in_threadpool(functools.partial(ask, question, self.workspaces[workspace_id],
                                                           self.warehouse, previous=previous))
        return JSONResponse(json.loads(json.dumps(asdict(answer), default=str)))
