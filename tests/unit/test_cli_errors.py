"""Every command fails within seconds on a warehouse URL it cannot use, naming ABOS_WAREHOUSE_URL, with the
password masked and no traceback (issue 18, "Errors and secrets")."""

import time

import pytest

from pipelines.cli import main

PASSWORD = "hunter2"
URLS = {
    "a bad scheme": f"postgress://postgres:{PASSWORD}@127.0.0.1:5432/analytics",
    "an unreachable server": f"postgresql://postgres:{PASSWORD}@127.0.0.1:9/analytics",  # port 9: nothing listens
}
COMMANDS = {
    "run": ["run"],
    "demo": ["demo", "--size", "tiny"],
    "dbt": ["dbt", "build"],
    "analyst": ["analyst", "grant", "--workspace", "demo-saas", "--role", "reader"],
    "ingest": ["ingest", "stripe", "demo-saas"],
}
SECRETS = ["DEMO_US_STORE_SHOPIFY_TOKEN", "DEMO_BR_STORE_SHOPIFY_CLIENT_ID", "DEMO_BR_STORE_SHOPIFY_CLIENT_SECRET",
           "DEMO_SAAS_STRIPE_KEY"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_warehouse_url_that_cannot_be_used_fails_fast_naming_the_setting(abos_home, monkeypatch, capsys, url,
                                                                           command):
    monkeypatch.setenv("ABOS_WAREHOUSE_URL", URLS[url])
    monkeypatch.delenv("ABOS_WORKSPACES", raising=False)
    for name in SECRETS:
        monkeypatch.setenv(name, "set-for-the-test")
    started = time.monotonic()
    assert main(COMMANDS[command]) == 1
    assert time.monotonic() - started < 15
    out, err = capsys.readouterr()
    assert "ABOS_WAREHOUSE_URL=" in err and "postgres:***@" in err
    assert PASSWORD not in out + err and "Traceback" not in err
