"""`abos run --workspaces FILE`: the tenants file it names is the one checked, with errors naming it."""

import yaml

from pipelines.cli import main


def test_run_checks_the_named_workspaces_file_and_its_secrets(abos_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ABOS_WORKSPACES", "")  # restored after the test: `abos run` sets it for the Definitions
    monkeypatch.delenv("TINY_SHOP_TOKEN", raising=False)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"workspaces": [{
        "id": "tiny-shop", "name": "Tiny", "vertical": "ecommerce", "timezone": "Europe/Berlin", "currency": "EUR",
        "connectors": {"shopify": {"base_url": "http://127.0.0.1:9/shops/tiny-shop", "access_token_env": "TINY_SHOP_TOKEN"}},
    }]}))

    assert main(["run", "--workspaces", str(tenants)]) == 1

    error = capsys.readouterr().err
    assert str(tenants) in error and "TINY_SHOP_TOKEN" in error and "tiny-shop" in error
