from pipelines.ingest.assets import _schema_changes


def test_schema_changes_name_new_tables_columns_and_type_changes():
    before = {"orders": {"id": "text", "total": "decimal"}}
    after = {
        "orders": {"id": "text", "total": "decimal", "note": "text", "total__v_text": "text"},
        "refunds": {"id": "text"},
    }
    assert _schema_changes(before, after) == {
        "orders": ["new column: note (text)", "type changed: total also arrives as text, kept in total__v_text"],
        "refunds": ["first load"],
    }
    assert _schema_changes(after, after) == {}
