"""Registry ratios (macro metric_ratio) are exact decimals with the same digits on DuckDB and
Postgres: DuckDB divides decimals in double precision, ~16 significant digits, so ARPA over a large
MRR (an IDR or KRW business) came out one unit off in the 6th decimal there, and of type DOUBLE.

Expected values by hand, rounded half away from zero to 6 decimals:
    123,456,789,012.345678 / 7 = 17,636,684,144.620811 142…  → 17636684144.620811
     98,765,432,109.876543 / 3 = 32,921,810,703.292181       → 32921810703.292181
                  0.000001 / 2 = 0.0000005                    → 0.000001 (the half rounds up)
                 −1.000000 / 3 = −0.333333 3…                 → −0.333333
                 a denominator of 0                           → null
"""

from __future__ import annotations

import json

import pytest

from pipelines.settings import load_settings
from tests.scenario import run_dbt

ROWS = [("123456789012.345678", 7), ("98765432109.876543", 3), ("0.000001", 2), ("-1", 3), ("5", 0)]
EXPECTED = ["17636684144.620811", "32921810703.292181", "0.000001", "-0.333333", None]
QUERY = ("select id, cast({{ metric_ratio('arpa') }} as varchar) as arpa,"
         " cast({{ 'typeof' if target.type == 'duckdb' else 'pg_typeof' }}({{ metric_ratio('arpa') }}) as varchar)"
         " as type from (values "
         + ", ".join(f"({i}, cast({mrr} as decimal(38, 6)), cast({n} as bigint))" for i, (mrr, n) in enumerate(ROWS))
         + ") as t(id, mrr, active_customers)")


@pytest.mark.parametrize("database", ["duckdb", "postgres"])
def test_a_ratio_is_the_exact_quotient_rounded_half_up_on_both_databases(database, request, tmp_path):
    env = {"ABOS_HOME": str(tmp_path)}
    if database == "postgres":
        env["ABOS_WAREHOUSE_URL"] = request.getfixturevalue("new_pg_database")()
    shown = run_dbt(load_settings(env), "show", "--inline", QUERY, "--output", "json", "--limit", "10",
                    "--log-format", "text").stdout
    rows = sorted(json.loads(shown[shown.index("{"):shown.rindex("}") + 1])["show"], key=lambda row: row["id"])
    assert [row["arpa"] for row in rows] == EXPECTED
    assert {row["type"] for row in rows} == {"DECIMAL(38,6)" if database == "duckdb" else "numeric"}
