"""Tenants: load and validate `workspaces.yaml`.

Every error names the file, the workspace and the key to fix, and one load reports every
workspace's first problem (and, with `require_secrets`, every unset variable) at once. Secrets never
appear in the file: a connector names the *environment variables* that hold them (keys ending in
`_env`), and `Connector.secret()` reads them when they are needed; a Slack target names its
bot-token variable the same way (`SlackTarget.token()`). A `_env` value that looks like a secret
itself is rejected, and no message echoes it. String values may use `${VAR}` or `${VAR:-default}`
to take, say, a sandbox port from the environment.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pipelines.countries import country_for_timezone, known_country
from pipelines.currencies import ISO_4217
from pipelines.secret_shapes import looks_like_secret, shown
from pipelines.settings import SettingsError, load_settings

VERTICALS = ("ecommerce", "saas")
CONNECTORS_BY_VERTICAL = {"ecommerce": ("shopify",), "saas": ("stripe",)}
# Webhook signing secrets, current and previous (while a secret rotates); only `abos serve` needs them.
WEBHOOK_SECRETS = ("webhook_secret", "webhook_previous_secret")
# Per connector: which secret settings it takes, and which combinations are complete.
CONNECTOR_SECRETS = {
    "shopify": {"access_token_env", "client_id_env", "client_secret_env",
                "webhook_secret_env", "webhook_previous_secret_env"},
    "stripe": {"api_key_env", "webhook_secret_env", "webhook_previous_secret_env"},
}
CONNECTOR_OPTIONS = {"shopify": {"api_version", "shop_domain"}, "stripe": {"api_version"}}
NOTIFICATION_KEYS = {"slack": {"channel", "bot_token_env"}, "email": {"to"}}  # required
NOTIFICATION_OPTIONS = {"slack": {"if_token_unset"}, "email": set()}
IF_TOKEN_UNSET = ("fail", "outbox")
NAME_LENGTH = 200
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL_ADDRESS = re.compile(r"^[^@\s<>,;\x00-\x1f\x7f]+@[^@\s<>,;\x00-\x1f\x7f]+\.[^@\s<>,;\x00-\x1f\x7f]+$")
SLACK_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
WORKSPACE_KEYS = {"id", "name", "vertical", "timezone", "currency", "country", "locale", "connectors",
                  "notifications"}
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class WorkspaceError(ValueError):
    """`workspaces.yaml` is invalid, or a setting it names is missing."""


@dataclass(frozen=True)
class Connector:
    """One data source of a workspace: where it is and which environment variables hold its secrets."""

    kind: str
    base_url: str
    secret_envs: dict[str, str]  # setting (e.g. "access_token") -> environment variable name
    options: dict[str, Any]
    workspace_id: str
    file: Path

    def has_secret(self, name: str) -> bool:
        return name in self.secret_envs

    def secret(self, name: str, env: dict[str, str] | None = None) -> str:
        """The secret `name` (e.g. "access_token"), read from the variable the workspace names."""
        env = os.environ if env is None else env
        key = f"connectors.{self.kind}.{name}_env"
        variable = self.secret_envs.get(name)
        if variable is None:
            raise WorkspaceError(f"{self.file}: workspace {self.workspace_id!r}: {key} is not set")
        value = env.get(variable)
        if not value:
            raise WorkspaceError(_unset(self.file, self.workspace_id, key, variable))
        return value

    def webhook_secrets(self, env: dict[str, str] | None = None) -> list[str]:
        """The secrets webhooks may be signed with, current first; unset variables are skipped.

        A Shopify app signs its webhooks with its client secret, so `client_secret_env` serves when
        `webhook_secret_env` is not set.
        """
        env = os.environ if env is None else env
        names = [name for name in WEBHOOK_SECRETS if name in self.secret_envs]
        if "webhook_secret" not in names and "client_secret" in self.secret_envs:
            names.insert(0, "client_secret")
        return [env[self.secret_envs[name]] for name in names if env.get(self.secret_envs[name])]

    @property
    def shop_domain(self) -> str | None:
        """The shop's myshopify.com domain (Shopify's X-Shopify-Shop-Domain): `shop_domain`, else the
        base URL's host when it is one, else `<last path segment>.myshopify.com` (the sandbox's /shops/<shop>)."""
        if self.kind != "shopify":
            return None
        if self.options.get("shop_domain"):
            return str(self.options["shop_domain"]).lower()
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "").lower()
        if host.endswith(".myshopify.com"):
            return host
        return f"{parts.path.rstrip('/').rpartition('/')[2].lower()}.myshopify.com"


@dataclass(frozen=True)
class SlackTarget:
    """A workspace's Slack channel (`#name` or a channel ID), the variable holding its bot token, and
    what a report does while that variable is unset: "fail" (the delivery fails, naming it) or "outbox"."""

    channel: str
    bot_token_env: str
    if_token_unset: str = "fail"

    def token(self, env: dict[str, str] | None = None) -> str | None:
        """The bot token, or None when its variable is unset."""
        env = os.environ if env is None else env
        return env.get(self.bot_token_env) or None


@dataclass(frozen=True)
class EmailTarget:
    """A workspace's report recipients."""

    to: tuple[str, ...]


@dataclass(frozen=True)
class Notifications:
    """Where a workspace's reports go; a channel left out of workspaces.yaml is None."""

    slack: SlackTarget | None = None
    email: EmailTarget | None = None


@dataclass(frozen=True)
class Workspace:
    """One business (tenant)."""

    id: str
    name: str
    vertical: str
    timezone: str
    currency: str
    connectors: dict[str, Connector]
    notifications: Notifications = field(default_factory=Notifications)
    country: str | None = None  # ISO 3166 alpha-2, as set in workspaces.yaml (see holiday_country)
    locale: str = "en"  # the reports' language and number formats, a CLDR locale such as pt_BR

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def holiday_country(self) -> str | None:
        """The country whose holidays the anomaly detector knows: `country`, else the timezone's."""
        return self.country or country_for_timezone(self.timezone)


@dataclass(frozen=True)
class Workspaces:
    file: Path
    items: tuple[Workspace, ...]

    @property
    def ids(self) -> list[str]:
        return [w.id for w in self.items]

    def get(self, workspace_id: str) -> Workspace:
        for workspace in self.items:
            if workspace.id == workspace_id:
                return workspace
        raise WorkspaceError(f"{self.file}: no workspace {workspace_id!r} (known: {', '.join(self.ids)})")

    def by_connector(self, kind: str) -> list[Workspace]:
        return [w for w in self.items if kind in w.connectors]

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _unset(file: Path, workspace_id: str, key: str, variable: str) -> str:
    return f"{file}: workspace {workspace_id!r}: {key} names environment variable {variable}, which is not set"


def _variable(raw: Any, where: str, key: str) -> str:
    """The environment variable a `*_env` key names; a value, above all one that looks like a secret, is an error."""
    if isinstance(raw, str) and looks_like_secret(raw):
        raise WorkspaceError(
            f"{where}: {key} holds what looks like a secret (not shown here): move it into an environment "
            "variable and put that variable's name here; treat the secret as exposed if this file was shared")
    if not isinstance(raw, str) or not VARIABLE_NAME.match(raw):
        raise WorkspaceError(f"{where}: {key} must name an environment variable, not hold a value")
    return raw


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _parse_connector(kind: str, raw: Any, where: str, workspace_id: str, file: Path, env: dict) -> Connector:
    if not isinstance(raw, dict):
        raise WorkspaceError(f"{where}: connectors.{kind} must be a mapping")
    unknown = set(raw) - CONNECTOR_SECRETS[kind] - CONNECTOR_OPTIONS[kind] - {"base_url"}
    if unknown:
        raise WorkspaceError(f"{where}: connectors.{kind}.{sorted(unknown)[0]} is not a known setting")
    base_url = _interpolate(raw.get("base_url"), env)
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise WorkspaceError(f"{where}: connectors.{kind}.base_url must be an http(s) URL")
    secret_envs = {key.removesuffix("_env"): _variable(raw[key], where, f"connectors.{kind}.{key}")
                   for key in sorted(CONNECTOR_SECRETS[kind] & set(raw))}
    if kind == "shopify":
        has_token = "access_token" in secret_envs
        has_client = {"client_id", "client_secret"} <= set(secret_envs)
        if not has_token and not has_client:
            raise WorkspaceError(
                f"{where}: connectors.shopify needs access_token_env, or client_id_env and client_secret_env"
            )
    if kind == "stripe" and "api_key" not in secret_envs:
        raise WorkspaceError(f"{where}: connectors.stripe.api_key_env is required")
    options = {k: _interpolate(raw[k], env) for k in CONNECTOR_OPTIONS[kind] & set(raw)}
    return Connector(kind, base_url.rstrip("/"), secret_envs, options, workspace_id, file)


def _parse_notifications(raw: Any, where: str, env: dict[str, str]) -> Notifications:
    if raw is None:
        return Notifications()
    if not isinstance(raw, dict):
        raise WorkspaceError(f"{where}: notifications must be a mapping")
    for channel, settings in raw.items():
        if channel not in NOTIFICATION_KEYS:
            raise WorkspaceError(f"{where}: notifications.{channel} is not one of {', '.join(NOTIFICATION_KEYS)}")
        if not isinstance(settings, dict):
            raise WorkspaceError(f"{where}: notifications.{channel} must be a mapping")
        unknown = set(settings) - NOTIFICATION_KEYS[channel] - NOTIFICATION_OPTIONS[channel]
        if unknown:
            raise WorkspaceError(f"{where}: notifications.{channel}.{sorted(unknown)[0]} is not a known setting")
        missing = NOTIFICATION_KEYS[channel] - set(settings)
        if missing:
            raise WorkspaceError(f"{where}: notifications.{channel}.{sorted(missing)[0]} is required")
    slack = email = None
    if "slack" in raw:
        channel = _interpolate(raw["slack"]["channel"], env)
        if not isinstance(channel, str) or not SLACK_CHANNEL.match(channel):
            raise WorkspaceError(
                f"{where}: notifications.slack.channel must be a channel name such as \"#analytics\" "
                f"(lower case) or a channel ID such as C0123456789 (got {shown(channel)})")
        variable = _variable(raw["slack"]["bot_token_env"], where, "notifications.slack.bot_token_env")
        if_token_unset = raw["slack"].get("if_token_unset", "fail")
        if if_token_unset not in IF_TOKEN_UNSET:
            raise WorkspaceError(f"{where}: notifications.slack.if_token_unset must be one of "
                                 f"{', '.join(IF_TOKEN_UNSET)} (got {shown(if_token_unset)})")
        slack = SlackTarget(channel=channel, bot_token_env=variable, if_token_unset=if_token_unset)
    if "email" in raw:
        to = raw["email"]["to"]
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and EMAIL_ADDRESS.match(a) for a in to):
            raise WorkspaceError(f"{where}: notifications.email.to must be a list of email addresses")
        if len(set(to)) != len(to):
            raise WorkspaceError(f"{where}: notifications.email.to lists an address twice")
        email = EmailTarget(to=tuple(to))
    return Notifications(slack=slack, email=email)


def _parse_workspace(raw: Any, index: int, file: Path, env: dict[str, str]) -> Workspace:
    if not isinstance(raw, dict):
        raise WorkspaceError(f"{file}: workspaces[{index}] must be a mapping")
    workspace_id = raw.get("id")
    if not isinstance(workspace_id, str) or not ID_PATTERN.match(workspace_id):
        raise WorkspaceError(
            f"{file}: workspaces[{index}]: id must be lower-case letters, digits, '-' or '_' (got {shown(workspace_id)})"
        )
    where = f"{file}: workspace {workspace_id!r}"
    unknown = set(raw) - WORKSPACE_KEYS
    if unknown:
        raise WorkspaceError(f"{where}: {sorted(unknown)[0]} is not a known key")
    for key in ("name", "vertical", "timezone", "currency", "connectors"):
        if raw.get(key) in (None, ""):
            raise WorkspaceError(f"{where}: {key} is required")
    name = str(raw["name"]) if isinstance(raw["name"], (int, float)) else raw["name"]
    if not isinstance(name, str) or len(name) > NAME_LENGTH or \
            any(unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp") for character in name):
        # The name goes into email subjects and Slack headers: a line break there breaks every email.
        raise WorkspaceError(f"{where}: name must be text of at most {NAME_LENGTH} characters on one line, "
                             "without control characters (line breaks, tabs, invisible formatting)")
    vertical = raw["vertical"]
    if vertical not in VERTICALS:
        raise WorkspaceError(f"{where}: vertical {shown(vertical)} is unknown; use one of {', '.join(VERTICALS)}")
    try:
        ZoneInfo(str(raw["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise WorkspaceError(f"{where}: timezone {shown(raw['timezone'])} is not an IANA timezone name") from None
    currency = str(raw["currency"])
    if currency not in ISO_4217:
        raise WorkspaceError(f"{where}: currency {shown(currency)} is not an ISO-4217 code (e.g. USD, EUR, BRL)")
    country = raw.get("country")
    if country is not None:
        if not isinstance(country, str) or not known_country(country):
            raise WorkspaceError(f"{where}: country {shown(country)} is not an ISO 3166 alpha-2 code (e.g. US, BR, DE); "
                                 "it picks the holidays anomaly detection knows, and defaults to the timezone's country")
    locale = _parse_locale(raw.get("locale", "en"), where)
    connectors_raw = raw["connectors"]
    if not isinstance(connectors_raw, dict) or not connectors_raw:
        raise WorkspaceError(f"{where}: connectors must map a connector name to its settings")
    connectors = {}
    for kind, settings in connectors_raw.items():
        if kind not in CONNECTOR_SECRETS:
            raise WorkspaceError(f"{where}: connectors.{kind} is not a known connector")
        if kind not in CONNECTORS_BY_VERTICAL[vertical]:
            raise WorkspaceError(
                f"{where}: connectors.{kind} does not fit vertical {vertical!r} "
                f"(it takes {', '.join(CONNECTORS_BY_VERTICAL[vertical])})"
            )
        connectors[kind] = _parse_connector(kind, settings, where, workspace_id, file, env)
    return Workspace(
        id=workspace_id,
        name=name,
        vertical=vertical,
        timezone=str(raw["timezone"]),
        currency=currency,
        connectors=connectors,
        notifications=_parse_notifications(raw.get("notifications"), where, env),
        country=country,
        locale=locale,
    )


def _parse_locale(value: object, where: str) -> str:
    """A CLDR locale such as `en`, `pt_BR` (or `pt-BR`), in Babel's spelling."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(str(value).replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise WorkspaceError(f"{where}: locale {shown(value)} is not a known locale (e.g. en, en_GB, pt_BR, de_DE); "
                             "it sets the language and number formats of the workspace's reports") from None


def load_workspaces(
    path: str | Path | None = None, *, require_secrets: bool = False, env: dict[str, str] | None = None
) -> Workspaces:
    """Read and validate the tenants file (default: settings' ABOS_WORKSPACES).

    Args:
        require_secrets: also check that every variable the file and the delivery settings name is
            set (`missing_variables`).

    Raises:
        WorkspaceError: every problem found, one per line: the first of each workspace, or every
            unset variable.
    """
    env = dict(os.environ if env is None else env)
    file = Path(path) if path is not None else load_settings(env).workspaces_file
    try:
        doc = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise WorkspaceError(f"{file}: cannot read the workspaces file ({exc.strerror}); set ABOS_WORKSPACES") from exc
    except yaml.YAMLError as exc:
        # Only the position: PyYAML's own message quotes the line, which may hold a pasted secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkspaceError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'parse error'}") \
            from None
    if not isinstance(doc, dict) or not isinstance(doc.get("workspaces"), list):
        raise WorkspaceError(f"{file}: expected a top-level 'workspaces:' list")
    items: list[Workspace] = []
    problems: list[str] = []
    for index, raw in enumerate(doc["workspaces"]):
        try:
            workspace = _parse_workspace(raw, index, file, env)
        except WorkspaceError as exc:
            problems.append(str(exc))
            continue
        if workspace.id in {w.id for w in items}:
            problems.append(f"{file}: workspace {workspace.id!r}: id is a duplicate (workspaces[{index}])")
            continue
        items.append(workspace)
    workspaces = Workspaces(file=file, items=tuple(items))
    if require_secrets and not problems:
        problems = missing_variables(workspaces, env)
    if problems:
        raise WorkspaceError(problems[0] if len(problems) == 1 else
                             f"{file}: {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    return workspaces


def missing_variables(workspaces: Workspaces, env: dict[str, str]) -> list[str]:
    """Every variable the workspaces and the delivery settings name that is unset, each naming the key to fix.

    Connector secrets; Slack bot tokens (unless `if_token_unset: outbox`); the SMTP password when
    ABOS_SMTP_USER is set; the operator channel's token when ABOS_OPERATOR_SLACK_CHANNEL is set.
    """
    problems = []
    for workspace in workspaces:
        for connector in workspace.connectors.values():
            # Webhook secrets are checked by `abos serve`, which is the only thing that needs them.
            problems += [_unset(workspaces.file, workspace.id, f"connectors.{connector.kind}.{name}_env", variable)
                         for name, variable in connector.secret_envs.items()
                         if not env.get(variable) and name not in WEBHOOK_SECRETS]
        slack = workspace.notifications.slack
        if slack is not None and slack.if_token_unset == "fail" and slack.token(env) is None:
            problems.append(_unset(workspaces.file, workspace.id, "notifications.slack.bot_token_env",
                                   slack.bot_token_env) + " (or set notifications.slack.if_token_unset: outbox)")
    try:
        delivery = load_settings(env).delivery
    except SettingsError as exc:
        return [*problems, str(exc)]
    emails = any(workspace.notifications.email is not None for workspace in workspaces)
    if emails and delivery.smtp.host and delivery.smtp.user and delivery.smtp.password is None:
        problems.append(f"ABOS_SMTP_USER is set, but {delivery.smtp.password_env} (ABOS_SMTP_PASSWORD_ENV), "
                        "which should hold the SMTP password, is not")
    if delivery.operator_channel and delivery.operator_token is None:
        problems.append(f"ABOS_OPERATOR_SLACK_CHANNEL is set, but {delivery.operator_token_env} "
                        "(ABOS_OPERATOR_SLACK_TOKEN_ENV), which should hold its bot token, is not")
    return problems
