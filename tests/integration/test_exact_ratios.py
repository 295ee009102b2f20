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

Customer metrics (net sales per customer to 4 decimals, the repeat purchase rate to 9; the same
macro): `net_sales_to_date / customers_to_date`, `repeat_customers_to_date / customers_to_date`
    51,388,241.6733 / 966 = 53,196.937 55                     → 53196.9376 (DuckDB's double division gave
                                                                …9375: 820 of 6,000 such ties came out low)
                      1 / 966 = 0.001 035 196 687…            → 0.001035197
              48,890.17 / 280 = 174.607 75                     → 174.6078 (the demo's Brazilian shop on
                                                                2025-02-26; DuckDB gave 174.6077)
                      1 / 280 = 0.003 571 428 57…             → 0.003571429
                   −20 / 3 = −6.666 6…                        → −6.6667, and 0 / 3 → 0.000000000
                  0.0001 / 2 = 0.000 05                       → 0.0001, and 1 / 2 → 0.500000000
                 no customers                                 → null
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
# (net_sales_to_date, repeat_customers_to_date, customers_to_date) per row
CUSTOMER_ROWS = [("51388241.6733", 1, 966), ("48890.17", 1, 280), ("-20", 0, 3), ("10", 0, 0), ("0.0001", 1, 2)]
PER_CUSTOMER_EXPECTED = ["53196.9376", "174.6078", "-6.6667", None, "0.0001"]
REPEAT_RATE_EXPECTED = ["0.001035197", "0.003571429", "0.000000000", None, "0.500000000"]
QUERY = ("select id, cast({{ metric_ratio('arpa') }} as varchar) as arpa,"
         " cast({{ 'typeof' if target.type == 'duckdb' else 'pg_typeof' }}({{ metric_ratio('arpa') }}) as varchar)"
         " as type, cast({{ metric_ratio('aov', 4) }} as varchar) as aov,"
         " cast({{ 'typeof' if target.type == 'duckdb' else 'pg_typeof' }}({{ metric_ratio('aov', 4) }}) as varchar)"
         " as aov_type, cast({{ metric_ratio('net_sales_per_customer', 4) }} as varchar) as per_customer,"
         " cast({{ metric_ratio('repeat_purchase_rate', 9) }} as varchar) as repeat_rate from (values "
         + ", ".join(f"({i}, cast({mrr} as decimal(38, 6)), cast({n} as bigint), cast({gross} as decimal(38, 4)),"
                     f" cast({discounts} as decimal(38, 4)), cast({orders} as bigint),"
                     f" cast({net} as decimal(38, 4)), cast({repeat} as bigint), cast({customers} as bigint))"
                     for i, ((mrr, n), (gross, discounts, orders), (net, repeat, customers))
                     in enumerate(zip(ROWS, AOV_ROWS, CUSTOMER_ROWS)))
         + ") as t(id, mrr, active_customers, gross_sales, discounts, orders, net_sales_to_date,"
           " repeat_customers_to_date, customers_to_date)")


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
    assert [row["per_customer"] for row in rows] == PER_CUSTOMER_EXPECTED
    assert [row["repeat_rate"] for row in rows] == REPEAT_RATE_EXPECTED
