"""workspaces.yaml: the committed demo file loads, and every invalid case names file, workspace and key."""

import textwrap

import pytest

from pipelines.workspaces import WorkspaceError, load_workspaces
from tests.conftest import REPO

VALID = """
workspaces:
  - id: shop-a
    name: Shop A
    vertical: ecommerce
    timezone: Europe/Lisbon
    currency: EUR
    ask_token_env: SHOP_A_ASK_TOKEN
    connectors:
      shopify:
        base_url: ${SHOP_URL:-http://127.0.0.1:9999}/shops/shop-a
        access_token_env: SHOP_A_TOKEN
    notifications:
      slack: {channel: "#a", bot_token_env: SLACK_TOKEN}
      email: {to: [a@example.com]}
  - id: saas-b
    name: SaaS B
    vertical: saas
    timezone: Asia/Tokyo
    currency: JPY
    connectors:
      stripe:
        base_url: https://api.stripe.com
        api_key_env: SAAS_B_KEY
"""


def write(tmp_path, text):
    path = tmp_path / "workspaces.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_committed_demo_file_describes_the_sandbox_tenants():
    workspaces = load_workspaces(REPO / "workspaces.yaml", env={})
    assert workspaces.ids == ["demo-us-store", "demo-br-store", "demo-saas"]
    us, br, saas = workspaces
    assert (us.vertical, us.currency, us.timezone) == ("ecommerce", "USD", "America/New_York")
    assert (br.vertical, br.currency, br.timezone) == ("ecommerce", "BRL", "America/Sao_Paulo")
    assert (us.locale, br.locale, saas.locale) == ("en", "pt_BR", "en")  # the BR shop's owner reads Portuguese
    assert (saas.vertical, saas.currency) == ("saas", "USD")
    assert us.connectors["shopify"].base_url == "http://127.0.0.1:8701/shops/demo-us-store"
    assert br.connectors["shopify"].has_secret("client_secret")
    # every demo workspace reports to one Slack channel and one email address
    for workspace in workspaces:
        assert workspace.notifications.slack is not None and workspace.notifications.slack.channel.startswith("#")
        assert len(workspace.notifications.email.to) == 1
    # and answers questions over HTTP and in its own channel of the demo's Slack team (docs/ask.md)
    assert [w.ask_token_env for w in workspaces] == ["DEMO_US_STORE_ASK_TOKEN", "DEMO_BR_STORE_ASK_TOKEN",
                                                     "DEMO_SAAS_ASK_TOKEN"]
    assert {w.ask_slack.team_id for w in workspaces} == {"T0000DEMO"}
    assert len({w.ask_slack.channels for w in workspaces}) == 3


def test_valid_file_and_interpolation(tmp_path):
    workspaces = load_workspaces(write(tmp_path, VALID), env={"SHOP_URL": "http://127.0.0.1:1234"})
    shop = workspaces.get("shop-a")
    assert shop.connectors["shopify"].base_url == "http://127.0.0.1:1234/shops/shop-a"
    assert shop.connectors["shopify"].secret("access_token", {"SHOP_A_TOKEN": "shpat_x"}) == "shpat_x"
    assert [w.id for w in workspaces.by_connector("stripe")] == ["saas-b"]
    slack = shop.notifications.slack
    assert (slack.channel, slack.token({"SLACK_TOKEN": "xoxb-1"}), slack.token({})) == ("#a", "xoxb-1", None)
    assert shop.notifications.email.to == ("a@example.com",)
    assert workspaces.get("saas-b").notifications.slack is None


@pytest.mark.parametrize(
    ("change", "key", "workspace"),
    [
        (("vertical: ecommerce", "vertical: retail"), "vertical", "shop-a"),
        (("timezone: Europe/Lisbon", "timezone: Mars/Olympus"), "timezone", "shop-a"),
        (("currency: JPY", "currency: XYZ"), "currency", "saas-b"),
        (("id: saas-b", "id: shop-a"), "id", "shop-a"),
        (("      stripe:\n        base_url: https://api.stripe.com\n        api_key_env: SAAS_B_KEY",
          "      shopify:\n        base_url: https://x.myshopify.com\n        access_token_env: T"),
         "connectors.shopify", "saas-b"),
        (("access_token_env: SHOP_A_TOKEN", "access_token_env: shpat_literal-secret!"),
         "connectors.shopify.access_token_env", "shop-a"),
        (("api_key_env: SAAS_B_KEY", "api_kee_env: SAAS_B_KEY"), "connectors.stripe.api_kee_env", "saas-b"),
        (("api_key_env: SAAS_B_KEY", "api_key_env: SAAS_B_KEY\n        requests_per_second: 0"),
         "connectors.stripe.requests_per_second", "saas-b"),
        (("email: {to: [a@example.com]}", "email: {to: [nobody]}"), "notifications.email.to", "shop-a"),
        (("email: {to: [a@example.com]}", "email: {to: [a@example.com, a@example.com]}"),
         "notifications.email.to", "shop-a"),
        (('channel: "#a"', 'channel: "analytics"'), "notifications.slack.channel", "shop-a"),
        (("bot_token_env: SLACK_TOKEN", "bot_token_env: xoxb-123-abc"), "notifications.slack.bot_token_env",
         "shop-a"),
        ((', bot_token_env: SLACK_TOKEN', ''), "notifications.slack.bot_token_env", "shop-a"),
        (("slack: {", "teams: {"), "notifications.teams", "shop-a"),
    ],
)
def test_invalid_cases_name_file_workspace_and_key(tmp_path, change, key, workspace):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, env={})
    message = str(error.value)
    assert str(path) in message
    assert f"workspace {workspace!r}" in message
    assert key in message


def test_missing_secret_variable_names_the_variable(tmp_path):
    path = write(tmp_path, VALID)
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, require_secrets=True, env={"SHOP_A_TOKEN": "x"})
    message = str(error.value)
    assert str(path) in message and "workspace 'saas-b'" in message
    assert "connectors.stripe.api_key_env" in message and "SAAS_B_KEY" in message
    # Loading without secrets still works; the secret is only needed when the connector runs.
    workspace = load_workspaces(path, env={}).get("saas-b")
    with pytest.raises(WorkspaceError, match="SAAS_B_KEY"):
        workspace.connectors["stripe"].secret("api_key", {})


def test_unreadable_file_names_the_setting(tmp_path):
    with pytest.raises(WorkspaceError, match="ABOS_WORKSPACES"):
        load_workspaces(tmp_path / "missing.yaml")


def test_the_ask_token_is_read_from_the_variable_the_workspace_names(tmp_path):
    workspaces = load_workspaces(write(tmp_path, VALID), env={})
    assert workspaces.get("shop-a").ask_token({"SHOP_A_ASK_TOKEN": "t0k"}) == "t0k"
    assert workspaces.get("shop-a").ask_token({}) is None  # unset: no question over HTTP is accepted
    assert workspaces.get("saas-b").ask_token({"SHOP_A_ASK_TOKEN": "t0k"}) is None


def test_locale_defaults_to_english_and_must_be_a_known_locale(tmp_path):
    workspaces = load_workspaces(write(tmp_path, VALID), env={}).items
    assert [w.locale for w in workspaces] == ["en", "en"]
    for written, parsed in [("pt_BR", "pt_BR"), ("pt-BR", "pt_BR"), ("de", "de")]:
        chosen = VALID.replace("    timezone: Europe/Lisbon\n", f"    timezone: Europe/Lisbon\n    locale: {written}\n")
        assert load_workspaces(write(tmp_path, chosen), env={}).get("shop-a").locale == parsed
    wrong = VALID.replace("    timezone: Europe/Lisbon\n", "    timezone: Europe/Lisbon\n    locale: Portuguese\n")
    with pytest.raises(WorkspaceError, match=r"workspace 'shop-a': locale 'Portuguese' is not a known locale"):
        load_workspaces(write(tmp_path, wrong), env={})


def test_country_is_optional_checked_and_defaults_from_the_timezone(tmp_path):
    workspaces = load_workspaces(write(tmp_path, VALID), env={})
    assert [w.country for w in workspaces] == [None, None]
    assert [w.holiday_country for w in workspaces] == ["PT", "JP"]  # Europe/Lisbon, Asia/Tokyo
    explicit = VALID.replace("    timezone: Europe/Lisbon\n", "    timezone: Europe/Lisbon\n    country: BR\n")
    assert load_workspaces(write(tmp_path, explicit), env={}).get("shop-a").holiday_country == "BR"
    wrong = VALID.replace("    timezone: Europe/Lisbon\n", "    timezone: Europe/Lisbon\n    country: Portugal\n")
    with pytest.raises(WorkspaceError, match=r"workspace 'shop-a': country 'Portugal' is not an ISO 3166"):
        load_workspaces(write(tmp_path, wrong), env={})


# --- secrets where a variable name belongs, and names that break emails -----------------------------

SECRETS = ["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", "sk_live_51HxYzAbCdEfGhIjKlMnOpQr", "xoxb-1234-5678-AbCdEfGh",
           "a3f9c2e1b4d5a6f7a3f9c2e1b4d5a6f7", "kJ8sN2pQ9xL4mR7tVw3Z"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("key, replaced", [
    ("connectors.shopify.access_token_env", "access_token_env: SHOP_A_TOKEN"),
    ("connectors.stripe.api_key_env", "api_key_env: SAAS_B_KEY"),
    ("notifications.slack.bot_token_env", "bot_token_env: SLACK_TOKEN"),
    ("ask_token_env", "ask_token_env: SHOP_A_ASK_TOKEN"),
])
def test_a_secret_pasted_where_a_variable_name_belongs_is_rejected_and_never_echoed(tmp_path, secret, key, replaced):
    path = write(tmp_path, VALID.replace(replaced, f"{replaced.split(':')[0]}: {secret}"))
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, env={})
    message = str(error.value)
    assert key in message and "looks like a secret" in message
    assert secret not in message and secret[:12] not in message


def test_ordinary_variable_names_are_not_taken_for_secrets(tmp_path):
    names = ["SUMMIT_SHOPIFY_TOKEN", "DEMO_BR_STORE_SHOPIFY_CLIENT_SECRET", "shop_a_token", "ASIA_SHOP_TOKEN"]
    for name in names:
        assert load_workspaces(write(tmp_path, VALID.replace("SHOP_A_TOKEN", name)), env={})


def test_a_yaml_error_names_the_place_but_not_the_line(tmp_path):
    path = write(tmp_path, VALID.replace("access_token_env: SHOP_A_TOKEN",
                                         "access_token_env: [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"))
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, env={})
    assert "not valid YAML at line" in str(error.value) and "shpat_" not in str(error.value)


@pytest.mark.parametrize("name", ["Shop A\r\nBcc: victim@example.com", "Shop\nA", "Shop\tA", "Shop\u202eA", "x" * 201])
def test_a_name_that_would_break_an_email_header_is_rejected(tmp_path, name):
    path = write(tmp_path, VALID.replace("name: Shop A", f"name: {name!r}".replace("'", '"')))
    with pytest.raises(WorkspaceError, match=r"workspace 'shop-a': name must be text .* on one line"):
        load_workspaces(path, env={})


def test_every_problem_is_reported_at_once(tmp_path):
    broken = VALID.replace("timezone: Europe/Lisbon", "timezone: Mars/Olympus").replace("currency: JPY", "currency: XYZ")
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(write(tmp_path, broken), env={})
    message = str(error.value)
    assert "2 problems" in message and "workspace 'shop-a': timezone" in message and "workspace 'saas-b': currency" in message


def test_every_missing_variable_is_reported_at_once_slack_and_smtp_included(tmp_path):
    path = write(tmp_path, VALID)
    env = {"ABOS_SMTP_HOST": "smtp.example", "ABOS_SMTP_USER": "reports", "ABOS_SMTP_PASSWORD_ENV": "MAIL_PASSWORD",
           "ABOS_OPERATOR_SLACK_CHANNEL": "#ops"}
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, require_secrets=True, env=env)
    message = str(error.value)
    assert "5 problems" in message
    for variable, key in [("SHOP_A_TOKEN", "connectors.shopify.access_token_env"),
                          ("SAAS_B_KEY", "connectors.stripe.api_key_env"),
                          ("SLACK_TOKEN", "notifications.slack.bot_token_env"),
                          ("MAIL_PASSWORD", "ABOS_SMTP_PASSWORD_ENV"),
                          ("ABOS_OPERATOR_SLACK_TOKEN", "ABOS_OPERATOR_SLACK_TOKEN_ENV")]:
        assert variable in message and key in message
    # With every variable set, nothing is missing; an outbox fallback makes the Slack token optional.
    full = {**env, "SHOP_A_TOKEN": "t", "SAAS_B_KEY": "k", "SLACK_TOKEN": "x", "MAIL_PASSWORD": "p",
            "ABOS_OPERATOR_SLACK_TOKEN": "o"}
    assert load_workspaces(path, require_secrets=True, env=full)
    outbox = write(tmp_path, VALID.replace("bot_token_env: SLACK_TOKEN", "bot_token_env: SLACK_TOKEN, if_token_unset: outbox"))
    assert load_workspaces(outbox, require_secrets=True, env={k: v for k, v in full.items() if k != "SLACK_TOKEN"})


def test_workspaces_check_lists_every_missing_variable(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    for variable in ("SHOP_A_TOKEN", "SAAS_B_KEY", "SLACK_TOKEN", "ABOS_SMTP_HOST", "ABOS_OPERATOR_SLACK_CHANNEL"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["workspaces", "check", "--file", str(write(tmp_path, VALID))]) == 1
    error = capsys.readouterr().err
    assert all(variable in error for variable in ("SHOP_A_TOKEN", "SAAS_B_KEY", "SLACK_TOKEN"))


@pytest.mark.parametrize(("change", "wrong", "nearest"), [
    (("api_key_env: SAAS_B_KEY", "api_kee_env: SAAS_B_KEY"), "connectors.stripe.api_kee_env",
     "connectors.stripe.api_key_env"),
    (("    timezone: Asia/Tokyo", "    timezon: Asia/Tokyo"), "timezon", "timezone"),
    (("      shopify:\n", "      shopfy:\n"), "connectors.shopfy", "connectors.shopify"),
    (('slack: {channel: "#a", bot_token_env: SLACK_TOKEN}', 'slack: {channel: "#a", bot_token_env: SLACK_TOKEN, if_token_unset: outbx}'),
     "notifications.slack.if_token_unset", "'outbox'"),
    (("vertical: saas", "vertical: sass"), "vertical", "'saas'"),
])
def test_a_misspelt_key_or_value_names_the_nearest_valid_one(tmp_path, change, wrong, nearest):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(WorkspaceError) as error:
        load_workspaces(path, env={})
    message = str(error.value)
    assert str(path) in message and wrong in message
    assert f"did you mean {nearest}?" in message


# --- the Slack app that answers `/ask` ----------------------------------------------------------------

ASK_SLACK = "    ask_token_env: SHOP_A_ASK_TOKEN\n"


def with_slack(shop: str, saas: str | None = None) -> str:
    text = VALID.replace(ASK_SLACK, ASK_SLACK + f"    ask_slack: {shop}\n")
    if saas is not None:
        text = text.replace("    currency: JPY\n", f"    currency: JPY\n    ask_slack: {saas}\n")
    return text


def test_the_slack_command_names_a_team_channel_ids_and_the_signing_secrets_variable(tmp_path):
    text = with_slack("{team_id: T0SHOPA01, channels: [C0SHOPA01], signing_secret_env: SLACK_SIGNING}",
                      "{team_id: '${TEAM:-T0SAASB01}', signing_secret_env: SLACK_SIGNING}")
    shop, saas = load_workspaces(write(tmp_path, text), env={"TEAM": "T0FROMENV"})
    assert (shop.ask_slack.team_id, shop.ask_slack.channels) == ("T0SHOPA01", ("C0SHOPA01",))
    assert (saas.ask_slack.team_id, saas.ask_slack.channels) == ("T0FROMENV", ())  # any channel of the team
    assert shop.ask_slack.signing_secret({"SLACK_SIGNING": "s3cret"}) == "s3cret"
    assert shop.ask_slack.signing_secret({}) is None


@pytest.mark.parametrize("setting, key", [
    ("{team_id: acme, signing_secret_env: S}", "ask_slack.team_id must be a Slack team ID"),
    ("{team_id: T0SHOPA01, channels: ['#general'], signing_secret_env: S}", "ask_slack.channels must be a list of "
                                                                            "channel IDs"),
    ("{team_id: T0SHOPA01, signing_secret_env: 8f14e45fceea167a5a36dedd4bea2543}", "ask_slack.signing_secret_env"),
    ("{team_id: T0SHOPA01}", "ask_slack.signing_secret_env is required"),
])
def test_a_wrong_slack_command_setting_names_its_key(tmp_path, setting, key):
    with pytest.raises(WorkspaceError, match="workspace 'shop-a': " + key):
        load_workspaces(write(tmp_path, with_slack(setting)), env={})


@pytest.mark.parametrize("shop, saas, shared", [
    ("[C0SHARED1]", "[C0SHARED1, C0SAASB01]", "channel C0SHARED1"),
    ("[]", "[C0SAASB01]", "every channel"),
])
def test_two_workspaces_cannot_answer_in_the_same_slack_channel(tmp_path, shop, saas, shared):
    team = "{team_id: T0SAME001, channels: %s, signing_secret_env: S}"
    with pytest.raises(WorkspaceError, match=f"workspace 'saas-b': ask_slack answers in {shared} of team T0SAME001, "
                                             "as workspace 'shop-a' does"):
        load_workspaces(write(tmp_path, with_slack(team % shop, team % saas)), env={})
    # their own channels of one team are fine
    assert load_workspaces(write(tmp_path, with_slack(team % "[C0SHOPA01]", team % "[C0SAASB01]")), env={})
