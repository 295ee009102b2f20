"""`abos serve`: the ASGI app providers and people call (Starlette on uvicorn).

It carries the webhook ingress (docs/webhooks.md), the ask API, the Slack command and the ask page (docs/ask.md):
    POST /webhooks/shopify/<workspace>   Shopify topics, including the compliance ones
    POST /webhooks/stripe/<workspace>    Stripe events
    POST /v1/workspaces/<workspace>/ask  a question in plain language, with the workspace's bearer token
    GET  /v1/workspaces/<workspace>/suggestions, .../history   with the same token
    GET  /v1/workspaces/<workspace>/charts/<question_id>.png   an answer's chart
    POST /v1/slack/commands              Slack's slash command (`/ask ...`), signed by the Slack app
    GET  /ask                            the ask page (`/` leads there)
    GET  /healthz
"""

from __future__ import annotations

import contextlib
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.ask.chart import folder_of
from pipelines.serve import web
from pipelines.serve.ask import AskApi
from pipelines.serve.slack import SlackCommands
from pipelines.serve.webhooks import (DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_BODY_BYTES, Gateway, InboxWriter,
                                      endpoints)
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces


def create_app(settings: Settings, workspaces: Workspaces, *, env: dict[str, str] | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Starlette:
    """The app for `workspaces`; webhook secrets, ask tokens and Slack signing secrets are read once, from
    `env` (default: the environment)."""
    env = dict(os.environ if env is None else env)
    writer = InboxWriter(settings.warehouse, lock_timeout)
    gateway = Gateway(endpoints(workspaces, env), writer, max_body_bytes)
    questions = AskApi(workspaces, settings.warehouse, env, settings.llm, folder_of(settings.home))
    slack = SlackCommands(workspaces, settings.warehouse, env, folder_of(settings.home), settings.llm)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        yield
        await writer.close()

    routes = [Route("/healthz", health, methods=["GET"]),
              Route("/webhooks/{provider}/{workspace}", gateway.receive, methods=["POST"]),
              Route("/v1/workspaces/{workspace}/ask", questions.ask, methods=["POST"]),
              Route("/v1/workspaces/{workspace}/suggestions", questions.suggestions, methods=["GET"]),
              Route("/v1/workspaces/{workspace}/history", questions.history, methods=["GET"]),
              Route("/v1/workspaces/{workspace}/charts/{name}", questions.chart, methods=["GET"], name="ask_chart"),
              Route("/v1/slack/commands", slack.command, methods=["POST"]), *web.routes]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    app.state.ask = questions
    app.state.slack = slack
    return app


def run(app: Starlette, host: str, port: int) -> None:
    """Serve `app` until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
