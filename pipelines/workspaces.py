"""Tenants: typed models of `workspaces.yaml` (pydantic), loaded and validated.

Every error names the file, the workspace and the key to fix, and for a key or value that does not
exist, the nearest one that does ("did you mean"). One load reports every workspace's first problem
(and, with `require_secrets`, every unset variable) at once. Secrets never appear in the file: a
connector names the *environment variables* that hold them (keys ending in `_env`), and
`Connector.secret()` reads them when they are needed; a Slack target names its bot-token variable
the same way (`SlackTarget.token()`), and so does the Slack app that answers `/ask` (`AskSlack`). A `_env` value that looks like a secret itself is rejected,
and no message echoes it. String values may use `${VAR}` or `${VAR:-default}` to take, say, a
sandbox port from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.countries import country_for_timezone, known_country
from pipelines.currencies import ISO_4217
from pipelines.secret_shapes import looks_like_secret, shown
from pipelines.settings import SettingsError, load_settings

VERTICALS = ("ecommerce", "saas")
CONNECTORS_BY_VERTICAL = {"ecommerce": ("shopify",), "saas": ("stripe",)}
# Webhook signing secrets, current and previous (while a secret rotates); only `abos serve` needs them.
WEBHOOK_SECRETS = ("webhook_secret", "webhook_previous_secret")
IF_TOKEN_UNSET = ("fail", "outbox")
NAME_LENGTH = 200
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL_ADDRESS = re.compile(r"^[^@\s<>,;\x00-\x1f\x7f]+@[^@\s<>,;\x00-\x1f\x7f]+\.[^@\s<>,;\x00-\x1f\x7f]+$")
SLACK_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
SLACK_TEAM_ID = re.compile(r"^T[A-Z0-9]{6,}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
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


# -- the file's shape: pydantic models; a validator's message follows the key it is about -----------


class _Strict(BaseModel):
    """A mapping of workspaces.yaml: unknown keys are errors (with the nearest known key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _variable(raw: Any) -> str:
    """The environment variable a `*_env` key names; a value, above all one that looks like a secret, is an error."""
    if isinstance(raw, str) and looks_like_secret(raw):
        raise ValueError(
            "holds what looks like a secret (not shown here): move it into an environment variable and put "
            "that variable's name here; treat the secret as exposed if this file was shared")
    if not isinstance(raw, str) or not VARIABLE_NAME.match(raw):
        raise ValueError("must name an environment variable, not hold a value")
    return raw


def _optional_variable(raw: Any) -> str | None:
    """`_variable` for a key that may be left out or null."""
    return None if raw is None else _variable(raw)


def _nearest(value: object, choices: tuple[str, ...]) -> str:
    """"; did you mean 'b'?" when `value` is close to one of `choices`, else nothing."""
    near = difflib.get_close_matches(str(value), choices, n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def _one_of(choices: tuple[str, ...]) -> Callable[[object], object]:
    """A validator of a value that must be one of `choices`, naming the nearest one when it is not."""
    def check(value: object) -> object:
        if value not in choices:
            raise ValueError(f"{shown(value)} is unknown; use one of {', '.join(choices)}"
                             + _nearest(value, choices))
        return value
    return check


def _interpolate(value: Any, info: ValidationInfo) -> Any:
    """`${VAR}` and `${VAR:-default}` in a string, from the load's environment."""
    env = (info.context or {}).get("env", {})
    if not isinstance(value, str):
        return value
    return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


class SlackTarget(_Strict):
    """A workspace's Slack channel (`#name` or a channel ID), the variable holding its bot token, and
    what a report does while that variable is unset: "fail" (the delivery fails, naming it) or "outbox"."""

    channel: str
    bot_token_env: str
    if_token_unset: str = "fail"

    @field_validator("channel", mode="before")
    @classmethod
    def _a_channel(cls, channel: object, info: ValidationInfo) -> object:
        channel = _interpolate(channel, info)
        if not isinstance(channel, str) or not SLACK_CHANNEL.match(channel):
            raise ValueError(f"must be a channel name such as \"#analytics\" (lower case) or a channel ID such as "
                             f"C0123456789 (got {shown(channel)})")
        return channel

    _token = field_validator("bot_token_env", mode="before")(_variable)

    _if_token_unset = field_validator("if_token_unset", mode="before")(_one_of(IF_TOKEN_UNSET))

    def token(self, env: dict[str, str] | None = None) -> str | None:
        """The bot token, or None when its variable is unset."""
        env = os.environ if env is None else env
        return env.get(self.bot_token_env) or None


class AskSlack(_Strict):
    """Where a workspace answers Slack's slash command (docs/ask.md): its Slack team, optionally only some
    of that team's channels (IDs, which a rename cannot take over), and the variable holding the Slack
    app's signing secret."""

    team_id: str
    channels: tuple[str, ...] = ()  # empty: every channel of the team
    signing_secret_env: str

    @field_validator("team_id", mode="before")
    @classmethod
    def _a_team(cls, team: object, info: ValidationInfo) -> object:
        team = _interpolate(team, info)
        if not isinstance(team, str) or not SLACK_TEAM_ID.match(team):
            raise ValueError(f"must be a Slack team ID such as T0123456789 (got {shown(team)})")
        return team

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_ids(cls, channels: object, info: ValidationInfo) -> object:
        channels = [_interpolate(channel, info) for channel in channels] if isinstance(channels, list) else channels
        if not isinstance(channels, list) or not all(isinstance(c, str) and SLACK_CHANNEL_ID.match(c) for c in channels):
            raise ValueError("must be a list of channel IDs such as C0123456789 (a name can be renamed or reused)")
        return tuple(channels)

    _secret = field_validator("signing_secret_env", mode="before")(_variable)

    def signing_secret(self, env: dict[str, str] | None = None) -> str | None:
        """The app's signing secret, or None when its variable is unset (then no command is accepted)."""
        env = os.environ if env is None else env
        return env.get(self.signing_secret_env) or None


class EmailTarget(_Strict):
    """A workspace's report recipients."""

    to: tuple[str, ...]

    @field_validator("to", mode="before")
    @classmethod
    def _addresses(cls, to: object) -> object:
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and EMAIL_ADDRESS.match(a) for a in to):
            raise ValueError("must be a list of email addresses")
        if len(set(to)) != len(to):
            raise ValueError("lists an address twice")
        return tuple(to)


class Notifications(_Strict):
    """Where a workspace's reports go; a channel left out of workspaces.yaml is None."""

    slack: SlackTarget | None = None
    email: EmailTarget | None = None


class _ConnectorSettings(_Strict):
    """One connector's settings: its base URL, the variables holding its secrets, its options."""

    SECRETS: ClassVar[tuple[str, ...]] = ("webhook_secret_env", "webhook_previous_secret_env")
    OPTIONS: ClassVar[tuple[str, ...]] = ("api_version",)

    base_url: str
    api_version: str | None = None
    webhook_secret_env: str | None = None
    webhook_previous_secret_env: str | None = None

    _options = field_validator("api_version", mode="before")(_interpolate)

    @field_validator("base_url", mode="before")
    @classmethod
    def _http(cls, url: object, info: ValidationInfo) -> object:
        url = _interpolate(url, info)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return url

    @field_validator("*", mode="before")
    @classmethod
    def _secret_variables(cls, value: object, info: ValidationInfo) -> object:
        return _variable(value) if info.field_name.endswith("_env") else value

    def connector(self, kind: str, workspace_id: str, file: Path) -> Connector:
        """The workspace's `Connector`, with the secrets and options the file sets."""
        given = self.model_fields_set
        secrets = {name.removesuffix("_env"): getattr(self, name) for name in sorted(self.SECRETS) if name in given}
        options = {name: getattr(self, name) for name in self.OPTIONS if name in given}
        return Connector(kind, self.base_url.rstrip("/"), secrets, options, workspace_id, file)


class ShopifySettings(_ConnectorSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("access_token_env", "client_id_env", "client_secret_env",
                                          *_ConnectorSettings.SECRETS)
    OPTIONS: ClassVar[tuple[str, ...]] = ("api_version", "shop_domain")

    shop_domain: str | None = None
    access_token_env: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None

    _domain = field_validator("shop_domain", mode="before")(_interpolate)

    @model_validator(mode="after")
    def _credentials(self) -> ShopifySettings:
        if not self.access_token_env and not (self.client_id_env and self.client_secret_env):
            raise ValueError("needs access_token_env, or client_id_env and client_secret_env")
        return self


class StripeSettings(_ConnectorSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_key_env", *_ConnectorSettings.SECRETS)
    OPTIONS: ClassVar[tuple[str, ...]] = ("api_version", "requests_per_second")

    api_key_env: str
    # The pace of reads; default 80% of Stripe's limit for the key's mode (pipelines/ingest/stripe/client.py).
    requests_per_second: float | None = Field(None, gt=0)


class Connectors(_Strict):
    """The data sources of a workspace, by connector name."""

    shopify: ShopifySettings | None = None
    stripe: StripeSettings | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _a_mapping(cls, settings: object) -> object:
        if not isinstance(settings, dict):
            raise ValueError("must be a mapping")
        return settings

    @model_validator(mode="after")
    def _some(self) -> Connectors:
        if not self.model_fields_set:
            raise ValueError("must map a connector name to its settings")
        return self


class WorkspaceSpec(_Strict):
    """One workspace as `workspaces.yaml` states it."""

    id: str
    name: str
    vertical: str
    timezone: str
    currency: str
    country: str | None = None  # ISO 3166 alpha-2; None: the timezone's country
    locale: str = "en"
    connectors: Connectors
    notifications: Notifications = Notifications()
    ask_token_env: str | None = None  # the variable holding the bearer token of its ask API (docs/ask.md)
    ask_slack: AskSlack | None = None  # the Slack team (and channels) whose `/ask` it answers

    _ask_token = field_validator("ask_token_env", mode="before")(_optional_variable)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, raw: object) -> object:
        if isinstance(raw, dict):
            return {key: value for key, value in raw.items()
                    if not (key in ("name", "vertical", "timezone", "currency", "connectors") and value in (None, ""))}
        return raw

    @field_validator("notifications", mode="before")
    @classmethod
    def _none_is_empty(cls, notifications: object) -> object:
        return {} if notifications is None else notifications

    @field_validator("name", mode="before")
    @classmethod
    def _one_line(cls, name: object) -> object:
        name = str(name) if isinstance(name, (int, float)) else name
        if not isinstance(name, str) or len(name) > NAME_LENGTH or \
                any(unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp") for character in name):
            # The name goes into email subjects and Slack headers: a line break there breaks every email.
            raise ValueError(f"must be text of at most {NAME_LENGTH} characters on one line, without control "
                             "characters (line breaks, tabs, invisible formatting)")
        return name

    _known_vertical = field_validator("vertical", mode="before")(_one_of(VERTICALS))

    @field_validator("timezone", mode="before")
    @classmethod
    def _iana(cls, timezone: object) -> str:
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{shown(timezone)} is not an IANA timezone name") from None
        return str(timezone)

    @field_validator("currency", mode="before")
    @classmethod
    def _iso_4217(cls, currency: object) -> str:
        if str(currency) not in ISO_4217:
            raise ValueError(f"{shown(str(currency))} is not an ISO-4217 code (e.g. USD, EUR, BRL)")
        return str(currency)

    @field_validator("country", mode="before")
    @classmethod
    def _iso_3166(cls, country: object) -> object:
        if country is not None and (not isinstance(country, str) or not known_country(country)):
            raise ValueError(f"{shown(country)} is not an ISO 3166 alpha-2 code (e.g. US, BR, DE); it picks the "
                             "holidays anomaly detection knows, and defaults to the timezone's country")
        return country

    @field_validator("locale", mode="before")
    @classmethod
    def _cldr(cls, value: object) -> str:
        """A CLDR locale such as `en`, `pt_BR` (or `pt-BR`), in Babel's spelling."""
        from babel import Locale, UnknownLocaleError

        try:
            return str(Locale.parse(str(value).replace("-", "_")))
        except (UnknownLocaleError, ValueError, TypeError):
            raise ValueError(f"{shown(value)} is not a known locale (e.g. en, en_GB, pt_BR, de_DE); it sets the "
                             "language and number formats of the workspace's reports") from None

    @model_validator(mode="after")
    def _connectors_fit_the_vertical(self) -> WorkspaceSpec:
        for kind in self.connectors.model_fields_set:
            if kind not in CONNECTORS_BY_VERTICAL[self.vertical]:
                raise ValueError(f"connectors.{kind} does not fit vertical {self.vertical!r} "
                                 f"(it takes {', '.join(CONNECTORS_BY_VERTICAL[self.vertical])})")
        return self

    def workspace(self, file: Path) -> Workspace:
        """The tenant this spec describes."""
        connectors = {kind: getattr(self.connectors, kind).connector(kind, self.id, file)
                      for kind in type(self.connectors).model_fields if kind in self.connectors.model_fields_set}
        return Workspace(id=self.id, name=self.name, vertical=self.vertical, timezone=self.timezone,
                         currency=self.currency, connectors=connectors, notifications=self.notifications,
                         country=self.country, locale=self.locale, ask_token_env=self.ask_token_env,
                         ask_slack=self.ask_slack)


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
    ask_token_env: str | None = None  # the variable holding the bearer token of its ask API (docs/ask.md)
    ask_slack: AskSlack | None = None  # the Slack team (and channels) whose `/ask` it answers (docs/ask.md)

    def ask_token(self, env: dict[str, str] | None = None) -> str | None:
        """The bearer token its questions must carry over HTTP; None when unset (then none is accepted)."""
        env = os.environ if env is None else env
        return (env.get(self.ask_token_env) or None) if self.ask_token_env else None

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


def _parse_workspace(raw: Any, index: int, file: Path, env: dict[str, str]) -> Workspace:
    if not isinstance(raw, dict):
        raise WorkspaceError(f"{file}: workspaces[{index}] must be a mapping")
    workspace_id = raw.get("id")
    if not isinstance(workspace_id, str) or not ID_PATTERN.match(workspace_id):
        raise WorkspaceError(
            f"{file}: workspaces[{index}]: id must be lower-case letters, digits, '-' or '_' (got {shown(workspace_id)})"
        )
    try:
        spec = WorkspaceSpec.model_validate(raw, context={"env": env})
    except ValidationError as exc:
        # An unknown key first: a misspelt key (api_kee_env) also leaves the right one missing.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        raise WorkspaceError(f"{file}: workspace {workspace_id!r}: {_problem(errors[0])}") from None
    return spec.workspace(file)


def _problem(error: dict[str, Any]) -> str:
    """One pydantic error as `<key> <what is wrong>`; never the value (it may be a pasted secret)."""
    path = [str(part) for part in error["loc"]]
    key = ".".join(path)
    if error["type"] == "extra_forbidden":
        known = _keys_at(WorkspaceSpec, path[:-1])
        near = difflib.get_close_matches(path[-1], known, n=1)
        return (f"{key} is not a known setting" + (f"; did you mean {'.'.join([*path[:-1], near[0]])}?" if near else "")
                + f" (known: {', '.join(known)})")
    if error["type"] == "missing":
        return f"{key} is required"
    if error["type"] == "value_error":
        reason = str(error["ctx"]["error"])
        return f"{key} {reason}" if key else reason
    if error["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return f"{key} must be a mapping"
    return f"{key}: {error['msg']}"


def _keys_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """The keys the mapping at `path` (inside a `model`) may hold."""
    for name in path:
        annotation = model.model_fields[name].annotation
        model = next(kind for kind in getattr(annotation, "__args__", (annotation,))
                     if isinstance(kind, type) and issubclass(kind, BaseModel))
    return list(model.model_fields)


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
    problems += _shared_slack_channels(items, file)
    workspaces = Workspaces(file=file, items=tuple(items))
    if require_secrets and not problems:
        problems = missing_variables(workspaces, env)
    if problems:
        raise WorkspaceError(problems[0] if len(problems) == 1 else
                             f"{file}: {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    return workspaces


def _shared_slack_channels(items: list[Workspace], file: Path) -> list[str]:
    """A Slack channel two workspaces would answer `/ask` in: the command could not tell which one is meant.

    Workspaces may share a Slack team only when each lists its own channels."""
    problems = []
    for index, workspace in enumerate(items):
        mine = workspace.ask_slack
        for earlier in items[:index]:
            theirs = earlier.ask_slack
            if mine is None or theirs is None or mine.team_id != theirs.team_id:
                continue
            shared = sorted(set(mine.channels) & set(theirs.channels)) if mine.channels and theirs.channels else None
            if shared is None or shared:
                problems.append(f"{file}: workspace {workspace.id!r}: ask_slack answers in "
                                f"{f'channel {shared[0]}' if shared else 'every channel'} of team {mine.team_id}, "
                                f"as workspace {earlier.id!r} does (workspaces of one team each list their own "
                                "channels)")
    return problems


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
