"""What a secret looks like, so a setting that must name an environment variable never holds one.

Configuration names the variables that hold secrets (`access_token_env: SUMMIT_SHOPIFY_TOKEN`). A
token pasted there instead would be echoed as a "variable name" into errors, logs and run storage;
`looks_like_secret` recognises one, and `shown` keeps it out of every message.
"""

from __future__ import annotations

import re

# Prefixes of the credentials this project handles, and of common others.
SECRET_PREFIXES = (
    "shpat_", "shpca_", "shppa_", "shpss_", "shpua_",  # Shopify access tokens and secrets
    "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_",  # Stripe
    "xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxs-", "xapp-",  # Slack
    "sk-",  # OpenAI and compatible APIs
    "ghp_", "gho_", "ghs_", "github_pat_", "glpat-",  # GitHub, GitLab
)
AWS_ACCESS_KEY = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
# A word this long, or this long with digits among its letters, is no word: variable names are
# words like SUMMIT_SHOPIFY_TOKEN, and keys are random.
LONG_WORD = 24
RANDOM_WORD = 16


def looks_like_secret(value: str) -> bool:
    """Whether `value` looks like a credential rather than a variable name or an ordinary setting."""
    if value.startswith(SECRET_PREFIXES) or AWS_ACCESS_KEY.match(value) or \
            value.lower().startswith(("bearer ", "basic ")):
        return True
    for word in re.split(r"[^A-Za-z0-9]+", value):
        if len(word) >= LONG_WORD:
            return True
        if len(word) >= RANDOM_WORD and re.search(r"\d", word) and re.search(r"[A-Za-z]", word):
            return True
    return False


def shown(value: object) -> str:
    """`repr(value)` for a message, unless it looks like a secret."""
    if isinstance(value, str) and looks_like_secret(value):
        return "(a value that looks like a secret, not shown)"
    return repr(value)
