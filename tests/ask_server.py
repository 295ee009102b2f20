"""One `abos serve` app for the ask API, the Slack command and the web page (the `ask_server` fixture):
uvicorn on a loopback port over a DuckDB warehouse of hand-worked metric tables (tests/metric_tables.py).

Workspace "shop" (ecommerce) and "saas" answer in their own channels of Slack team T0TEAM001, under
the signing secret of one Slack app; "quiet" has no token and belongs to another Slack app's team.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.serve import create_app
from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces
from tests.gateway import running
from tests.metric_tables import write_metric_tables

TEAM, SHOP_CHANNEL, SAAS_CHANNEL = "T0TEAM001", "C0SHOP001", "C0SAAS001"
OTHER_TEAM = "T0OTHER01"
SIGNING_SECRET, OTHER_SIGNING_SECRET = "8f14e45f-slack-app", "c9f0f895-other-slack-app"
ENV = {"ASK_SHOP_TOKEN": "shop-token-1", "ASK_SAAS_TOKEN": "saas-token-2",
       "SLACK_SIGNING": SIGNING_SECRET, "OTHER_SLACK_SIGNING": OTHER_SIGNING_SECRET}
WORKSPACES = {"workspaces": [
    {"id": "shop", "name": "Shop", "vertical": "ecommerce", "timezone": "America/New_York", "currency": "USD",
     "ask_token_env": "ASK_SHOP_TOKEN",
     "ask_slack": {"team_id": TEAM, "channels": [SHOP_CHANNEL], "signing_secret_env": "SLACK_SIGNING"},
     "connectors": {"shopify": {"base_url": "https://shop.myshopify.com", "access_token_env": "SHOP_TOKEN"}}},
    {"id": "saas", "name": "SaaS", "vertical": "saas", "timezone": "UTC", "currency": "USD",
     "ask_token_env": "ASK_SAAS_TOKEN",
     "ask_slack": {"team_id": TEAM, "channels": [SAAS_CHANNEL], "signing_secret_env": "SLACK_SIGNING"},
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "SAAS_KEY"}}},
    {"id": "quiet", "name": "No API", "vertical": "saas", "timezone": "UTC", "currency": "USD",
     "ask_slack": {"team_id": OTHER_TEAM, "signing_secret_env": "OTHER_SLACK_SIGNING"},
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "QUIET_KEY"}}},
]}


@dataclass(frozen=True)
class AskServer:
    url: str
    home: Path


@contextmanager
def serve_ask(home: Path, *, settings_env: dict[str, str] | None = None,
              app_env: dict[str, str] | None = None) -> Iterator[AskServer]:
    """The app over the metric tables under `home`; `settings_env` adds settings (an LLM key and
    URL), `app_env` variables the app reads (a Slack response URL's allowed prefix)."""
    (home / "workspaces.yaml").write_text(yaml.safe_dump(WORKSPACES))
    env = {"ABOS_HOME": str(home), "ABOS_WORKSPACES": str(home / "workspaces.yaml"), **(settings_env or {})}
    settings = load_settings(env)
    write_metric_tables(settings.warehouse)
    with running(create_app(settings, load_workspaces(settings.workspaces_file, env=env),
                            env={**ENV, **(app_env or {})})) as url:
        yield AskServer(url, home)


def slack_headers(body: bytes, secret: str, *, t: int | None = None) -> dict[str, str]:
    """Slack's request signing, from its docs: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>") in hex."""
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode(), f"v0:{t}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(t),
            "X-Slack-Signature": f"v0={digest}"}
