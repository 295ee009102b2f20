"""How API-facing assets retry: one policy for every step that calls a remote API (ingest, delivery).

The clients retry single requests themselves (429s, 5xx, throttling). This policy is the next layer:
it reruns a whole step that still failed, with exponential backoff (30 s, 60 s, 120 s, ± jitter),
so a provider outage of a few minutes heals without an operator. A `dg.Failure(allow_retries=False)`
(a configuration error: bad credentials, a missing setting) is not retried.
"""

import dagster as dg

API_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
