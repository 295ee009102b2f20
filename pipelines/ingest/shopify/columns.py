"""Declared columns of the Shopify tables.

Every column the queries can fill is declared, so a table has it even while no row has a value yet
(a shop without cancelled orders still has `orders.cancelled_at`), and dbt models can rely on it.
Columns beyond these (a field whose type changed, say) are still added by dlt's schema evolution.
"""

from __future__ import annotations

from typing import Any

TEXT, BOOL, INT, DECIMAL, DOUBLE, TIMESTAMP, JSON = "text", "bool", "bigint", "decimal", "double", "timestamp", "json"


def _columns(spec: str) -> dict[str, str]:
    """`"id:text created_at:timestamp"` as `{"id": "text", "created_at": "timestamp"}`."""
    return dict(item.split(":") for item in spec.split())


def _bags(*names: str) -> dict[str, str]:
    """The four columns of each flattened money bag."""
    columns: dict[str, str] = {}
    for name in names:
        columns.update({f"{name}_amount": DECIMAL, f"{name}_currency": TEXT,
                        f"{name}_presentment_amount": DECIMAL, f"{name}_presentment_currency": TEXT})
    return columns


def _address(name: str) -> dict[str, str]:
    return {f"{name}_{part}": TEXT for part in ("city", "province_code", "country_code_v2", "zip")}


COLUMN_TYPES: dict[str, dict[str, str]] = {
    "orders": {
        **_columns(
            "workspace_id:text id:text legacy_resource_id:text name:text created_at:timestamp "
            "updated_at:timestamp processed_at:timestamp cancelled_at:timestamp cancel_reason:text "
            "closed_at:timestamp test:bool email:text currency_code:text presentment_currency_code:text "
            "display_financial_status:text display_fulfillment_status:text tags:json source_name:text "
            "discount_codes:json taxes_included:bool customer_id:text"
        ),
        **_address("billing_address"),
        **_address("shipping_address"),
        **_bags("subtotal_price", "total_price", "current_total_price", "total_discounts", "total_tax",
                "total_shipping_price", "total_refunded"),
        "tax_lines": JSON,
    },
    "order_line_items": {
        **_columns(
            "workspace_id:text id:text order_id:text name:text title:text variant_title:text sku:text "
            "vendor:text quantity:bigint current_quantity:bigint product_id:text variant_id:text"
        ),
        **_bags("original_unit_price", "original_total", "discounted_total", "total_discount"),
        "tax_lines": JSON,
        "discount_allocations": JSON,
    },
    "order_shipping_lines": {
        **_columns("workspace_id:text id:text order_id:text title:text code:text source:text"),
        **_bags("original_price", "discounted_price"),
        "tax_lines": JSON,
    },
    "order_discount_applications": _columns(
        "workspace_id:text order_id:text index:bigint type:text allocation_method:text target_selection:text "
        "target_type:text value_amount:decimal value_currency:text value_percentage:double code:text "
        "title:text description:text"
    ),
    "order_refunds": {
        **_columns(
            "workspace_id:text id:text order_id:text legacy_resource_id:text created_at:timestamp "
            "updated_at:timestamp processed_at:timestamp note:text"
        ),
        **_bags("total_refunded"),
    },
    "order_refund_line_items": {
        **_columns(
            "workspace_id:text id:text refund_id:text quantity:bigint restock_type:text restocked:bool "
            "line_item_id:text"
        ),
        **_bags("price", "subtotal", "total_tax"),
    },
    "products": _columns(
        "workspace_id:text id:text legacy_resource_id:text title:text handle:text vendor:text product_type:text "
        "status:text tags:json created_at:timestamp updated_at:timestamp published_at:timestamp "
        "total_inventory:bigint tracks_inventory:bool has_only_default_variant:bool"
    ),
    "product_variants": _columns(
        "workspace_id:text id:text product_id:text legacy_resource_id:text title:text display_name:text sku:text "
        "barcode:text position:bigint price:decimal compare_at_price:decimal inventory_quantity:bigint "
        "available_for_sale:bool taxable:bool created_at:timestamp updated_at:timestamp selected_options:json "
        "inventory_item_id:text inventory_item_tracked:bool inventory_item_unit_cost_amount:decimal "
        "inventory_item_unit_cost_currency:text"
    ),
    "customers": {
        **_columns(
            "workspace_id:text id:text legacy_resource_id:text first_name:text last_name:text display_name:text "
            "state:text locale:text tags:json verified_email:bool created_at:timestamp updated_at:timestamp "
            "number_of_orders:bigint amount_spent_amount:decimal amount_spent_currency:text "
            "default_email_address_email_address:text default_email_address_marketing_state:text"
        ),
        **_address("default_address"),
    },
}


def column_hints(table: str, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """dlt column hints for `table`: every declared column, keys not nullable."""
    return {
        name: {"data_type": data_type, "nullable": name not in keys}
        for name, data_type in COLUMN_TYPES[table].items()
    }
