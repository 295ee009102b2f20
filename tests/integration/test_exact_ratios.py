"""Registry ratios (macro metric_ratio) are exact decimals with the same digits on DuckDB and
Postgres: DuckDB divides decimals in double precision, ~16 significant digits, so ARPA over a large
MRR (an IDR or KRW business) came out one unit off in the 6th decimal there, and of type DOUBLE.

Expected values by hand, rounded half away from zero to 6 decimals:
    123,456,789,012.345678 / 7 = 17,636,684,144.620811 142…  → 17636684144.620811
     98,765,432,109.876543 / 3 = 32,921,810,703.292181       → 32921810703.292181
                  0.000001 / 2 = 0.0000005                    → 0.000001 (the half rounds up)
                 −1.000000 / 3 = −0.333333 3…                 → −0.333333
                 a denominator of 0                           → null

AOV (money, 4 decimals, the same macro; `(gross_sales − discounts) / orders`):
             1,234.57 / 8 = 154.321 25                        → 154.3213 (a day's sales often end in a half)
    987,654,321,098.7653 / 3 = 329,218,107,032.921 766…       → 329218107032.9218 (past 2^53 in 10^-4 units, where
                                                                double precision is not exact)
                 0.0001 / 2 = 0.000 05                        → 0.0001
                 no orders                                    → null
"""

from __future__ import annotations

import json

import pytest

from pipelines.settings import load_settings
from tests.scenario import run_dbt

ROWS = [("123456789012.345678", 7), ("98765432109.876543", 3), ("0.000001", 2), ("-1", 3), ("5", 0)]
EXPECTED = ["17636684144.620811", "32921810703.292181", "0.000001", "-0.333333", None]
# (gross_sales, discounts, orders) per row, beside ROWS
AOV_ROWS = [("1234.57", "0", 8), ("987654321098.7654", "0.0001", 3), ("0.0001", "0", 2), ("10", "0", 0), ("1", "0", 0)]
AOV_EXPECTED = ["154.3213", "329218107032.9218", "0.0001", None, None]
QUERY = ("select id, cast({{ metric_ratio('arpa') }} as varchar) as arpa,"
         " cast({{ 'typeof' if target.type == 'duckdb' else 'pg_typeof' }}({{ metric_ratio('arpa') }}) as varchar)"
         " as type, cast({{ metric_ratio('aov', 4) }} as varchar) as aov,"
         " cast({{ 'typeof' if target.type == 'duckdb' else 'pg_typeof' }}({{ metric_ratio('aov', 4) }}) as varchar)"
         " as aov_type from (values "
         + ", ".join(f"({i}, cast({mrr} as decimal(38, 6)), cast({n} as bigint), cast({gross} as decimal(38, 4)),"
                     f" cast({discounts} as decimal(38, 4)), cast({orders} as bigint))"
                     for i, ((mrr, n), (gross, discounts, orders)) in enumerate(zip(ROWS, AOV_ROWS)))
         + ") as t(id, mrr, active_customers, gross_sales, discounts, orders)")


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
    assert [row["aov"] for row in rows] == AOV_EXPECTED
    assert {row["aov_type"] for row in rows} == {"DECIMAL(38,4)" if database == "duckdb" else "numeric"}
