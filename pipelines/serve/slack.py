"""The Slack slash command: `POST /v1/slack/commands`, answered with Block Kit.

Slack signs each request with its app's signing secret (`X-Slack-Signature`, v0 HMAC-SHA256 over
`v0:<timestamp>:<raw body>`); slack-sdk's `SignatureVerifier` checks it, the timestamp within five
minutes and the digest in constant time, against each signing secret workspaces.yaml names
(`ask_slack.signing_secret_env`). A request no secret signed gets 401. A signed one is answered
for the workspace its Slack team and channel map to under that secret (`ask_slack.team_id`,
`channels`), never for one the question names; a team or channel mapped to none gets one message,
whatever it is, so answers do not tell which workspaces exist. Answers are ephemeral (only the
asker sees them), within Slack's three seconds: questions take well under one (docs/ask.md).

With an LLM key (`abos serve`'s settings), a question is read by the model, which can take longer
than Slack waits: the command is acknowledged at once and the answer is posted afterwards to the
command's `response_url` (slack-sdk's `WebhookClient`), replacing the acknowledgement. Refusals and
questions turned away never reach the model and are answered at once.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qs

from slack_sdk.models.blocks import Block, ContextBlock, ImageBlock, MarkdownTextObject, SectionBlock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines.ask.answer import Answer
from pipelines.ask.history import converse
from pipelines.ask.resolve import MAX_QUESTION_CHARS, screen
from pipelines.packs import pack_for
from pipelines.serve.ask import MAX_BODY_BYTES
from pipelines.serve.webhooks import BodyTooLarge
from pipelines.serve.webhooks import _body as read_body
from pipelines.settings import LlmSettings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace, Workspaces

log = logging.getLogger(__name__)

NOT_CONNECTED = ("This Slack channel is not connected to a workspace that answers questions. "
                 "Ask whoever runs AI Business OS to connect it (`ask_slack` in workspaces.yaml).")
EXAMPLES = {"ecommerce": ("net sales last week vs the week before", "top 5 products by net sales last month"),
            "saas": ("MRR by plan", "new MRR last month vs the month before")}
FIELDS_PER_SECTION = 10  # Block Kit's limits
MAX_FIELDS = 50  # a series' last 50 periods: Block Kit takes 50 blocks a message, a series may have 1,000 days
FIELD_CHARS = 2000
TEXT_CHARS = 3000
CONTEXT_ELEMENTS = 10
WORKING = "Looking into “{question}”… the answer follows here in a moment."
# Where a deferred answer may be posted: Slack's response URLs (a test points this at its stand-in).
RESPONSE_URLS = ("https://hooks.slack.com/",)
RESPONSE_URLS_ENV = "ABOS_SLACK_RESPONSE_URLS"  # comma-separated prefixes, instead of RESPONSE_URLS
RESPONSE_TIMEOUT_SECONDS = 10

Route = tuple[str, str | None]  # (team ID, channel ID or None for every channel of the team)


class SlackCommands:
    """The command route's state: one verifier per signing secret, each with the teams and channels it
    answers for, read once; and the warehouse."""

    def __init__(self, workspaces: Workspaces, warehouse: Warehouse, env: dict[str, str], charts: Path | None = None,
                 llm: LlmSettings | None = None):
        routes: dict[str, dict[Route, Workspace]] = defaultdict(dict)
        for workspace in workspaces:
            slack = workspace.ask_slack
            if slack is None or (secret := slack.signing_secret(env)) is None:
                continue
            for channel in slack.channels or (None,):
                routes[secret][(slack.team_id, channel)] = workspace
        self.apps = [(SignatureVerifier(secret), answered) for secret, answered in routes.items()]
        self.warehouse = warehouse
        self.charts = charts  # where series' PNGs are written (the ask API serves them)
        self.llm = llm if llm is not None and llm.api_key else None  # with a key: answers deferred to response_url
        self.response_urls = tuple(url.strip() for url in env.get(RESPONSE_URLS_ENV, "").split(",")
                                   if url.strip()) or RESPONSE_URLS

    @property
    def workspace_ids(self) -> list[str]:
        """The workspaces some Slack command can reach (their signing secret is set)."""
        return list(dict.fromkeys(w.id for _, answered in self.apps for w in answered.values()))

    async def command(self, request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        answered = next((routes for verifier, routes in self.apps if _signed(verifier, body, request)), None)
        if answered is None:
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        form = {key: values[0] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
        if form.get("ssl_check"):
            return Response(status_code=200)  # Slack checking the certificate
        team, channel = form.get("team_id", ""), form.get("channel_id", "")
        workspace = answered.get((team, channel)) or answered.get((team, None))
        if workspace is None:
            return _reply(NOT_CONNECTED)
        question = form.get("text", "").strip()
        command = form.get("command") or "/ask"
        if not question or question.lower() == "help":
            return _reply(f"Ask about {workspace.name}'s numbers in plain language, e.g. "
                          + " or ".join(f"`{command} {example}`" for example in EXAMPLES[workspace.vertical]) + ".")
        if len(question) > MAX_QUESTION_CHARS:
            return _reply(f"Ask in under {MAX_QUESTION_CHARS} characters.")
        # each person's questions in a channel are one conversation: "/ask and the month before?" follows on
        asked = functools.partial(converse, question, workspace, self.warehouse, via="slack", charts=self.charts,
                                  conversation=f"slack:{team}:{channel}:{form.get('user_id')}")
        response_url = form.get("response_url", "")
        if (self.llm is not None and response_url.startswith(self.response_urls)
                and screen(question, pack_for(workspace.vertical)) is None):
            # the model may take longer than Slack's three seconds: acknowledge now, answer at response_url
            return JSONResponse(_message(WORKING.format(question=_clip(question, 200))),
                                background=BackgroundTask(self._answer_later, asked, request, workspace, response_url))
        answer = await run_in_threadpool(asked)
        return JSONResponse(self._answered(answer, request, workspace))

    def _answered(self, answer: Answer, request: Request, workspace: Workspace) -> dict:
        """The Block Kit message of an answer (its chart, the URL the ask API serves it at)."""
        if answer.chart:
            answer.chart = str(request.url_for("ask_chart", workspace=workspace.id, name=Path(answer.chart).name))
        return {"response_type": "ephemeral", "text": _mrkdwn(answer.text, TEXT_CHARS),
                "blocks": [block.to_dict() for block in answer_blocks(answer)]}

    async def _answer_later(self, asked: functools.partial, request: Request, workspace: Workspace,
                            response_url: str) -> None:
        """The LLM's answer (or the resolver's, when the model's is not used), posted to the command's
        response_url in place of the acknowledgement."""
        answer = await run_in_threadpool(functools.partial(asked, llm=self.llm))
        message = self._answered(answer, request, workspace)
        client = WebhookClient(response_url, timeout=RESPONSE_TIMEOUT_SECONDS)
        sent = await run_in_threadpool(functools.partial(
            client.send, text=message["text"], blocks=message["blocks"], response_type="ephemeral",
            replace_original=True))
        if sent.status_code != 200:
            log.warning("Slack did not take the answer to question %s: HTTP %s", answer.question_id, sent.status_code)


def _signed(verifier: SignatureVerifier, body: bytes, request: Request) -> bool:
    try:
        return verifier.is_valid_request(body, dict(request.headers))
    except ValueError:  # a timestamp that is not a number, a body that is not UTF-8
        return False


def _reply(text: str) -> JSONResponse:
    """A message only the asker sees (Slack shows an HTTP error as a failure of the command)."""
    return JSONResponse(_message(text))


def _message(text: str) -> dict:
    text = _mrkdwn(text, TEXT_CHARS)
    return {"response_type": "ephemeral", "text": text,
            "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]}


def answer_blocks(answer: Answer) -> list[Block]:
    """The sentence; the table as section fields; the options to choose from; the citations as context."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_mrkdwn(answer.text, TEXT_CHARS)))]
    blocks += _table(answer)
    if answer.options:
        label = "Did you mean" if answer.status == "clarify" else "Metrics you can ask about"
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=_mrkdwn(f"{label}: " + ", ".join(answer.options), TEXT_CHARS))))
    if answer.chart and answer.chart.startswith("https://"):  # Slack fetches it: a public URL, or the message fails
        blocks.append(ImageBlock(image_url=answer.chart, alt_text=_clip(answer.text, 2000)))
    cited = _citations(answer.citations)
    if cited:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_mrkdwn(line, FIELD_CHARS)) for line in cited]))
    return blocks


def _table(answer: Answer) -> list[Block]:
    """A total: a field per column ("*Net sales*" over "$148,979.81"). A breakdown or a series: a
    field per row, its period and dimension values in bold ("*US · new*") over its figures
    ("$135.00", or "Net sales: $135.00" when there are several); ten fields a section. A series
    longer than MAX_FIELDS shows its last MAX_FIELDS periods and says so in its heading."""
    columns, rows, query = answer.columns, answer.rows, answer.query or {}
    if not columns or not rows:
        return []
    heading = " · ".join(columns)
    if len(rows) > MAX_FIELDS:
        heading += f" (the last {MAX_FIELDS} of {len(rows)} rows; the chart and the API's answer have all of them)"
        rows = rows[-MAX_FIELDS:]
    total = len(rows) == 1 and not query.get("dimensions") and query.get("grain", "total") == "total"
    if total:
        fields = [f"*{_mrkdwn(column, 200)}*\n{_mrkdwn(cell, FIELD_CHARS - 210)}" for column, cell in zip(columns, rows[0])]
    else:  # the row's period and dimension values ("US · new") in bold, then its figures
        lead = max(1, len(query.get("dimensions") or []) + (query.get("grain", "total") != "total"))
        fields = [f"*{_mrkdwn(' · '.join(map(str, row[:lead])), 200)}*\n" + _mrkdwn("\n".join(
            f"{column}: {cell}" if len(columns) > lead + 1 else str(cell)
            for column, cell in zip(columns[lead:], row[lead:])), FIELD_CHARS - 210) for row in rows]
    sections: list[Block] = []
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        shown = None if total or start else MarkdownTextObject(text=_mrkdwn(heading, TEXT_CHARS))
        sections.append(SectionBlock(text=shown, fields=[MarkdownTextObject(text=field)
                                                           for field in fields[start:start + FIELDS_PER_SECTION]]))
    return sections


def _citations(cited: dict) -> list[str]:
    """The lines `Answer.to_text` cites: up to four definitions and three more, within Block Kit's ten
    context elements."""
    if not cited:
        return []
    lines = [f"{name}: {text}" for name, text in cited.get("definitions", {}).items()]
    lines.append(f"Range: {cited['range']} ({cited['timezone']})"
                 + (f", compared with {cited['comparison']}" if cited.get("comparison") else ""))
    lines.append(f"Tables read: {', '.join(cited['tables'])}. Data through: {cited.get('data_through') or 'no data'}")
    lines.append("Last sync: " + (", ".join(f"{source} {when or 'never'}"
                                            for source, when in cited["last_sync"].items()) or "none"))
    return lines[-CONTEXT_ELEMENTS:]


def _mrkdwn(value: object, limit: int) -> str:
    """`value` as Slack mrkdwn that formats nothing of its own: &, < and > escaped (no mentions or
    links from a question or a product name), cut to `limit` without splitting an escape."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(text) <= limit:
        return text
    text = text[:limit - 1]
    if ";" not in text[text.rfind("&"):]:
        text = text[:text.rfind("&")] if "&" in text else text
    return text + "…"



def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
