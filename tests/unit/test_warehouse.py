"""Warehouse access: idempotent upserts and scoped replacement, on DuckDB and Postgres."""

import math
from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import psycopg2
import psycopg2.extras
import pytest

from pipelines.settings import load_settings
from pipelines.warehouse import (
    _TYPE_OIDS,
    Warehouse,
    _copied_rows,
    _delete_matching,
    _fetched_frame,
    _plain_rows,
    _sql_type,
)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path) -> Warehouse:
    env = {"ABOS_HOME": str(tmp_path)}
    if request.param == "postgres":
        env["ABOS_WAREHOUSE_URL"] = request.getfixturevalue("new_pg_database")()
    return load_settings(env).warehouse


def rows(*items: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"workspace_id": ws, "id": key, "day": date(2026, 3, 2), "value": value, "n": 1, "flag": True}
         for ws, key, value in items])


def test_upsert_creates_the_table_and_replaces_rows_with_the_same_key(warehouse):
    warehouse.upsert("insights.things", rows(("a", "x", 1.0), ("a", "y", 2.0)), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "x", 1.5), ("b", "z", 3.0)), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "x", 1.5), ("b", "z", 3.0)), key=["id"])  # a rerun

    found = warehouse.query("select id, value, day, n, flag from insights.things order by id")
    assert found["id"].tolist() == ["x", "y", "z"]
    assert found["value"].tolist() == [1.5, 2.0, 3.0]
    assert pd.to_datetime(found["day"]).dt.date.tolist() == [date(2026, 3, 2)] * 3
    assert found["n"].tolist() == [1, 1, 1] and found["flag"].all()


def test_replace_scope_drops_rows_a_rerun_no_longer_has(warehouse):
    warehouse.upsert("insights.things", rows(("a", "x", 1.0), ("a", "y", 2.0), ("b", "z", 3.0)), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "x", 1.0)), key=["id"], replace={"workspace_id": "a"})

    found = warehouse.query("select id from insights.things where workspace_id in (%s, %s) order by id", ["a", "b"])
    assert found["id"].tolist() == ["x", "z"]  # y went with workspace a's old set; b is untouched


def test_an_empty_frame_with_a_scope_clears_it(warehouse):
    warehouse.upsert("insights.things", rows(("a", "x", 1.0), ("b", "z", 3.0)), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "x", 1.0)).iloc[:0], key=["id"], replace={"workspace_id": "a"})
    assert warehouse.query("select id from insights.things")["id"].tolist() == ["z"]


def test_bad_input_is_refused_before_anything_is_written(warehouse):
    with pytest.raises(ValueError, match="schema-qualified"):
        warehouse.upsert("things", rows(("a", "x", 1.0)), key=["id"])
    with pytest.raises(ValueError, match="repeat a key"):
        warehouse.upsert("insights.things", rows(("a", "x", 1.0), ("a", "x", 2.0)), key=["id"])


def test_a_table_written_by_an_older_version_gains_the_new_columns(warehouse):
    warehouse.upsert("insights.things", rows(("a", "x", 1.0)).drop(columns=["flag"]), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "y", 2.0)), key=["id"])
    found = warehouse.query("select id, flag from insights.things order by id")
    assert list(found["id"]) == ["x", "y"] and pd.isna(found["flag"][0]) and bool(found["flag"][1])


def test_a_write_alters_the_table_only_for_the_columns_it_lacks(tmp_path, monkeypatch):
    warehouse = load_settings({"ABOS_HOME": str(tmp_path)}).warehouse
    executed: list[str] = []

    class Recording:  # the DuckDB connection, with the statements it ran
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            executed.append(sql)
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    opened = Warehouse._duckdb
    monkeypatch.setattr(Warehouse, "_duckdb", lambda self: Recording(opened(self)))
    warehouse.upsert("insights.things", rows(("a", "x", 1.0)).drop(columns=["flag", "n"]), key=["id"])
    warehouse.upsert("insights.things", rows(("a", "y", 2.0)), key=["id"])
    altered = [sql for sql in executed if sql.startswith("alter table")]
    assert altered == ['alter table insights.things add column if not exists "n" bigint',
                       'alter table insights.things add column if not exists "flag" boolean']
    executed.clear()
    warehouse.upsert("insights.things", rows(("a", "z", 3.0)), key=["id"])  # every column there already
    assert [sql for sql in executed if sql.startswith("alter table")] == []
    assert warehouse.query("select id, n from insights.things order by id")["n"].isna().tolist() == [True, False, False]


def test_reads_on_one_connection_return_what_single_queries_return(warehouse):
    warehouse.upsert("insights.t", rows(("a", "x", 1.5), ("b", "y", 2.25)), key=["id"])
    sql = "select workspace_id, id, day, value, n, flag from insights.t where value > %s order by id"
    with warehouse.reads() as read:  # holds the DuckDB lock: the warehouse's own calls come after
        both, above = read.query(sql, [1.0]), read.query(sql, [2.0])
        exists = read.table_exists("insights.t"), read.table_exists("insights.missing")
    pd.testing.assert_frame_equal(both, warehouse.query(sql, [1.0]))
    assert above["id"].tolist() == ["y"]
    assert exists == (True, False) == (warehouse.table_exists("insights.t"), warehouse.table_exists("insights.missing"))


def test_a_kept_open_warehouse_reads_and_writes_as_separate_calls_do_on_one_connection(warehouse, monkeypatch):
    opened = []
    connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *args, **kwargs: opened.append(args) or connect(*args, **kwargs))
    sql = "select workspace_id, id, day, value, n, flag from insights.t order by id"
    with warehouse.kept_open():
        warehouse.upsert("insights.t", rows(("a", "x", 1.5), ("b", "y", 2.25)), key=["id"])
        with warehouse.reads() as read:
            inside = read.query(sql)
        with pytest.raises(ValueError):  # refused before anything is written
            warehouse.upsert("insights.t", rows(("a", "x", 1.0), ("a", "x", 2.0)), key=["id"])
        with pytest.raises((duckdb.Error, psycopg2.Error)), warehouse.transaction() as statements:
            statements.execute("delete from insights.t where id = %s", ["x"])  # undone: the next one fails
            statements.execute("select * from insights.no_such_table")
        warehouse.upsert("insights.t", rows(("a", "z", 3.0)), key=["id"], replace={"workspace_id": "b"})
        kept = warehouse.query(sql)
        opens = len(opened)
    # the same rows as written and read by separate calls
    assert inside["id"].tolist() == ["x", "y"]
    assert kept[["workspace_id", "id", "value"]].values.tolist() == [["a", "x", 1.5], ["a", "z", 3.0]]
    pd.testing.assert_frame_equal(kept, warehouse.query(sql))
    if warehouse.kind == "duckdb":  # opened once, and once more after the failed transaction let go
        assert opens == 2


def test_a_writer_waiting_for_a_kept_open_warehouse_gets_in_between_its_calls(tmp_path):
    import threading
    import time

    warehouse = load_settings({"ABOS_HOME": str(tmp_path)}).warehouse
    warehouse.upsert("insights.t", rows(("a", "x", 1.0)), key=["id"])
    written = threading.Event()

    def other_writer() -> None:  # as the webhook gateway writes: a transaction with a lock timeout
        with warehouse.transaction(lock_timeout=5) as statements:
            statements.execute("insert into insights.t (workspace_id, id, value) values (%s, %s, %s)", ["b", "y", 2.0])
        written.set()

    with warehouse.kept_open():
        assert warehouse.query("select count(*) as n from insights.t")["n"].iloc[0] == 1  # the lock is held now
        thread = threading.Thread(target=other_writer)
        started = time.monotonic()
        thread.start()
        assert written.wait(3), "the other writer waited for the whole block"  # the block "computes" meanwhile
        waited = time.monotonic() - started
        thread.join()
        assert warehouse.query("select id from insights.t order by id")["id"].tolist() == ["x", "y"]
    assert waited < 2


def test_a_scoped_upserts_deletes_are_hash_joins_on_postgres_not_a_subquery_per_row(new_pg_database, tmp_path):
    """A scoped upsert deletes its scope and its keys. Written as one `key in (select …) or scope`,
    Postgres scans the incoming keys again for every row of the table once they outgrow `work_mem`
    (a `SubPlan`, not hashed): the customer values at scale 1 took over 20 minutes. Each delete's plan,
    with more incoming keys than `work_mem` holds, must do without one."""
    warehouse = load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()}).warehouse
    count = 60_000
    frame = pd.DataFrame({"workspace_id": ["a"] * count, "person_id": [f"person-{i:08d}" for i in range(count)],
                          "value": [float(i) for i in range(count)]})
    warehouse.upsert("insights.values", frame, key=["workspace_id", "person_id"])
    plans = []
    with warehouse.transaction() as statements:
        statements.execute("set local work_mem = '64kB'")
        statements.execute("create temporary table incoming on commit drop as select * from insights.values")
        statements.execute("analyze insights.values")
        statements.execute("analyze incoming")
        for deleted, values in _delete_matching("insights.values", ["workspace_id", "person_id"], {"workspace_id": "a"}):
            plans.append("\n".join(row[0] for row in statements.execute(f"explain {deleted}", values)))
    assert len(plans) == 2 and all("SubPlan" not in plan for plan in plans), plans
    # and the scoped upsert still replaces the whole scope
    warehouse.upsert("insights.values", frame.iloc[:10], key=["workspace_id", "person_id"], replace={"workspace_id": "a"})
    assert warehouse.query("select count(*) as n from insights.values")["n"][0] == 10


def test_awkward_values_round_trip_exactly_through_a_postgres_upserts_copy(new_pg_database, tmp_path):
    """On Postgres an upsert's rows go in by `COPY` of Arrow's CSV (`_copied_rows`): text with quotes,
    commas, line breaks, backslashes, `\\N` and an empty string (not NULL), NULLs of every type, floats
    to the last bit, infinities, dates, timestamps with and without a zone, booleans and big integers
    must read back as written, and as psycopg2's own `insert … values` writes them."""
    warehouse = load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()}).warehouse
    texts = ['say "hi", then go', "two\nlines\r\nand a\ttab", "back\\slash \\N", "\\N", "", None, "naïve ☃ 日本",
             "'single' quotes; -- not SQL", ",", '"']
    count = len(texts)
    floats = [0.1, 1 / 3, -0.0, 1e-300, 2.5e300, float("inf"), float("-inf"), float("nan"), 123456789.123456789,
              5e-324]
    frame = pd.DataFrame({
        "id": [f"row-{i}" for i in range(count)],
        "text": pd.Series(texts, dtype=object),
        "value": floats,
        "n": pd.array([0, -1, 2**62, None, 7, 8, 9, 10, 11, -(2**63)], dtype="Int64"),
        "flag": pd.array([True, False, None, True, False, True, False, True, False, True], dtype="boolean"),
        "day": [date(2026, 3, 2), date(1999, 12, 31), None, *[date(2026, 11, 25)] * (count - 3)],
        "at": pd.to_datetime(["2026-03-02 10:11:12.123456+01:00", None, *["2026-11-25 00:00:00.000001-08:00"] * (count - 2)],
                             utc=True, format="ISO8601").tz_convert("Europe/Berlin"),
        "naive": pd.to_datetime(["2026-03-02 10:11:12.654321", None, *["1969-07-20 20:17:40"] * (count - 2)],
                                format="ISO8601"),
        "facts": ['{"a": [1, 2], "b": "x\\"y"}', *["{}"] * (count - 1)],
    })
    types = {column: _sql_type(frame[column]) for column in frame.columns}
    assert _copied_rows(frame, types, [_TYPE_OIDS[types[column]] for column in frame.columns], "UTF8") is not None
    warehouse.upsert("insights.awkward", frame, key=["id"])
    # the same rows through psycopg2's literals, the way upserts wrote them before
    with warehouse.transaction() as statements:
        statements.execute("create table insights.awkward_literal as select * from insights.awkward limit 0")
    with warehouse.postgres_connection() as conn, conn.cursor() as cursor:
        psycopg2.extras.execute_values(cursor, "insert into insights.awkward_literal values %s", _plain_rows(frame))
    conn.close()

    found = warehouse.rows("select * from insights.awkward order by id")
    assert [row["text"] for row in found] == texts
    for row, value in zip(found, floats):
        assert (row["value"] is None) if math.isnan(value) else (row["value"] == value and
                                                               math.copysign(1, row["value"]) == math.copysign(1, value))
    assert [row["n"] for row in found] == [0, -1, 2**62, None, 7, 8, 9, 10, 11, -(2**63)]
    assert [row["flag"] for row in found] == [True, False, None, True, False, True, False, True, False, True]
    assert [row["day"] for row in found] == [date(2026, 3, 2), date(1999, 12, 31), None, *[date(2026, 11, 25)] * 7]
    assert found[0]["at"] == datetime(2026, 3, 2, 9, 11, 12, 123456, tzinfo=UTC) and found[1]["at"] is None
    assert found[2]["at"] == datetime(2026, 11, 25, 8, 0, 0, 1, tzinfo=UTC)
    assert [row["naive"] for row in found[:3]] == [datetime(2026, 3, 2, 10, 11, 12, 654321), None,
                                                  datetime(1969, 7, 20, 20, 17, 40)]
    assert found[0]["facts"] == '{"a": [1, 2], "b": "x\\"y"}'
    differ = ("select count(*) as n from (select * from insights.awkward except all select * from insights.awkward_literal) a"
              " full join (select * from insights.awkward_literal except all select * from insights.awkward) b on false")
    assert warehouse.rows(differ) == [{"n": 0}]
    # and an upsert over them replaces them by key, as any other
    warehouse.upsert("insights.awkward", frame.iloc[:2].assign(text=["a,b", ""]), key=["id"])
    assert [row["text"] for row in warehouse.rows("select text from insights.awkward order by id")] == ["a,b", "", *texts[2:]]


def test_postgres_reads_through_copy_give_what_fetchall_gives_value_for_value(new_pg_database, tmp_path):
    """A Postgres read of plain column types goes through `COPY … to stdout` read by Arrow
    (`_read_frame`): the frame must be psycopg2's, dtype for dtype and value for value: text with
    quotes, line breaks and backslashes, an empty string (not NULL), a row whose only column is NULL,
    integers with and without NULLs, floats and `numeric` to the last bit with NaN and infinities,
    dates, booleans, columns of NULLs only, no rows at all."""
    warehouse = load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()}).warehouse
    with warehouse.transaction() as statements:
        statements.execute("""create table public.awkward as select * from (values
            (1, 2::bigint, 3::smallint, 0.1::float8, 1.10::numeric, 'say "hi", then go', 'x'::varchar,
             date '2026-03-02', true, true, null::int),
            (null, 5, null, 'NaN'::float8, 'NaN'::numeric, '', null, null, null, false, null),
            (7, null, 9, '-Infinity'::float8, 123456789.123456789123::numeric, e'two\\nlines \\\\N, \\r\\n', '',
             date '1999-12-31', false, true, null)
            ) as v (i4, i8, i2, f8, num, txt, vc, day, flag, always, none)""")
    reads = ["select * from public.awkward order by i8", "select i8 from public.awkward order by i8 nulls first",
             "select txt, day from public.awkward where i2 = %s", "select * from public.awkward where false",
             "select always, f8, num from public.awkward order by f8",
             "select txt from public.awkward order by i8 -- a comment, read as it was", "select 1 as one;"]
    for sql in reads:
        params = [9] if "%s" in sql else []
        found = warehouse.query(sql, params)
        with warehouse.postgres_connection() as conn, conn.cursor() as cursor:
            cursor.execute(sql, params or None)
            fetched = _fetched_frame(cursor)
        conn.close()
        pd.testing.assert_frame_equal(found, fetched, check_exact=True)
        assert [repr(value) for value in found.to_numpy().ravel()] == [repr(value) for value in fetched.to_numpy().ravel()]
    found = warehouse.query(reads[0])
    assert found["txt"].tolist()[:2] == ['say "hi", then go', ""] and found["vc"].tolist()[2] == ""
    assert found["txt"][2] == "two\nlines \\N, \r\n" and pd.isna(found["vc"][1])
    assert found["i8"].tolist()[:2] == [2.0, 5.0] and math.isnan(found["i8"][2])  # a NULL makes them floats
    assert found["f8"][0] == 0.1 and found["f8"][2] == float("-inf") and math.isnan(found["num"][1])
    assert found["num"][2] == 123456789.12345679 and found["num"].dtype == "float64"
    assert found["day"].tolist() == [date(2026, 3, 2), None, date(1999, 12, 31)]
    assert found["flag"].tolist() == [True, None, False] and found["always"].dtype == bool
    assert found["none"].tolist() == [None, None, None] and found["none"].dtype == object
    assert warehouse.query(reads[1])["i8"].isna().tolist() == [True, False, False]
