"""A token pasted into workspaces.yaml where a variable name belongs is refused, and echoed nowhere.

The probe found `access_token_env: shpat_…` accepted and then echoed, as a "variable name", into
Dagster's run database, the compute logs and dlt's trace. Here the real commands run in
subprocesses: `abos run`, `abos workspaces check`, and loading the Definitions as `dagster dev`
does; then every output and every file under ABOS_HOME is searched for the secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from pipelines.secret_shapes import looks_like_secret, shown
from tests.conftest import REPO

WORKSPACE = """
workspaces:
  - id: tiny-shop
    name: Tiny Shop
    vertical: ecommerce
    timezone: Europe/Berlin
    currency: EUR
    connectors:
      shopify: {{base_url: "http://127.0.0.1:9/shops/tiny-shop", access_token_env: {secret}}}
"""


def test_a_pasted_token_is_refused_and_echoed_nowhere(abos_home, tmp_path):
    prefix = "shpat_"  # other shapes: tests/unit/test_workspaces.py
    secret = prefix + uuid.uuid4().hex
    tenants = tmp_path / "workspaces.yaml"
    tenants.write_text(WORKSPACE.format(secret=secret))
    env = {**os.environ, "ABOS_WORKSPACES": str(tenants)}
    abos = str(Path(sys.executable).parent / "abos")
    commands = [[abos, "run", "--workspaces", str(tenants)],
                [abos, "workspaces", "check", "--file", str(tenants)],
                [sys.executable, "-c", "import pipelines.definitions"]]  # what `dagster dev` loads
    for command in commands:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode != 0
        assert "connectors.shopify.access_token_env holds what looks like a secret" in done.stderr, done.stderr[-2000:]
        assert secret not in done.stdout + done.stderr and secret[len(prefix):] not in done.stdout + done.stderr
    for path in abos_home.rglob("*"):  # the Dagster home, logs, any trace
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_what_looks_like_a_secret():
    assert all(map(looks_like_secret, ["shpat_0123456789abcdef", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "xoxb-1-2-abc",
                                       "AKIAIOSFODNN7EXAMPLE", "Bearer abc", "0f9e8d7c6b5a49382716a5b4c3d2e1f0"]))
    assert not any(map(looks_like_secret, ["SUMMIT_SHOPIFY_TOKEN", "shop_a_token", "America/Argentina/Buenos_Aires",
                                           "Loja Verde Brasil", "#summit-analytics", "owner@summit-outdoor.example"]))
    assert shown("sk_live_abc") == "(a value that looks like a secret, not shown)" and shown("Mars/Olympus") == "'Mars/Olympus'"


def test_a_secret_in_a_settings_variable_that_names_another_is_refused_unshown():
    from pipelines.settings import SettingsError, load_settings

    secret = "sk_live_" + uuid.uuid4().hex
    for name in ("ABOS_SMTP_PASSWORD_ENV", "ABOS_OPERATOR_SLACK_TOKEN_ENV"):
        try:
            load_settings({name: secret})
        except SettingsError as error:
            assert name in str(error) and secret not in str(error)
        else:
            raise AssertionError(f"{name} accepted a secret")
