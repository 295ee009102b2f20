"""The GraphQL documents the Shopify connector sends, built from one field list per object type.

Each top-level object (orders, products, customers) is described once by an `ObjectSpec`: its own
fields, and the nested connections that become tables of their own. The same spec renders the
bulk-operation query (first sync) and the paged query (later syncs), so both paths select exactly
the same fields and produce identical rows. Every document is checked against Shopify's real
Admin schema in the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MONEY_V2 = "{ amount currencyCode }"
MONEY_BAG = f"{{ shopMoney {MONEY_V2} presentmentMoney {MONEY_V2} }}"
ADDRESS = "{ city provinceCode countryCodeV2 zip }"
TAX_LINES = f"taxLines {{ title rate priceSet {MONEY_BAG} }}"


@dataclass(frozen=True)
class Nested:
    """A connection under a top-level object whose nodes become rows of their own table."""

    field: str  # the connection on the parent, e.g. "lineItems"
    selection: str  # the node's fields; always starts with __typename so bulk lines can be routed
    page_size: int  # nodes per page inside the parent's page (keeps it under the 1000-point limit)
    follow_up_size: int  # nodes per page when fetching the rest of one parent's connection


@dataclass(frozen=True)
class ObjectSpec:
    """One top-level object type and everything the connector reads about it."""

    root: str  # connection on QueryRoot, e.g. "orders"
    singular: str  # single-node field on QueryRoot, e.g. "order"
    fields: str  # own fields; `{refund_line_items}` marks where a refund's line items go
    nested: tuple[Nested, ...]
    page_size: int  # top-level nodes per page when paging


# A refund's line items are a connection inside the (plain list) `refunds` field, so they are
# rendered separately: bulk queries take no `first`, paged queries must.
REFUND_LINE_ITEM_SELECTION = (
    f"__typename id quantity restockType restocked lineItem {{ id }} priceSet {MONEY_BAG} "
    f"subtotalSet {MONEY_BAG} totalTaxSet {MONEY_BAG}"
)
REFUND_LINE_ITEMS_PAGE_SIZE = 3
REFUND_LINE_ITEMS_FOLLOW_UP_PAGE_SIZE = 80

ORDERS = ObjectSpec(
    root="orders",
    singular="order",
    fields=(
        "id legacyResourceId name createdAt updatedAt processedAt cancelledAt cancelReason closedAt test "
        "email currencyCode presentmentCurrencyCode displayFinancialStatus displayFulfillmentStatus "
        "tags sourceName discountCodes taxesIncluded "
        f"customer {{ id }} billingAddress {ADDRESS} shippingAddress {ADDRESS} "
        f"subtotalPriceSet {MONEY_BAG} totalPriceSet {MONEY_BAG} currentTotalPriceSet {MONEY_BAG} "
        f"totalDiscountsSet {MONEY_BAG} totalTaxSet {MONEY_BAG} totalShippingPriceSet {MONEY_BAG} "
        f"totalRefundedSet {MONEY_BAG} {TAX_LINES} "
        "refunds { id legacyResourceId createdAt updatedAt processedAt note "
        f"totalRefundedSet {MONEY_BAG} {{refund_line_items}} }}"
    ),
    nested=(
        Nested(
            "lineItems",
            "__typename id name title variantTitle sku vendor quantity currentQuantity product { id } variant { id } "
            f"originalUnitPriceSet {MONEY_BAG} originalTotalSet {MONEY_BAG} discountedTotalSet {MONEY_BAG} "
            f"totalDiscountSet {MONEY_BAG} {TAX_LINES} "
            f"discountAllocations {{ allocatedAmountSet {MONEY_BAG} discountApplication {{ index }} }}",
            page_size=3,
            follow_up_size=30,
        ),
        Nested(
            "shippingLines",
            f"__typename id title code source originalPriceSet {MONEY_BAG} discountedPriceSet {MONEY_BAG} {TAX_LINES}",
            page_size=1,
            follow_up_size=60,
        ),
        Nested(
            "discountApplications",
            "__typename index allocationMethod targetSelection targetType "
            f"value {{ __typename ... on MoneyV2 {MONEY_V2} ... on PricingPercentageValue {{ percentage }} }} "
            "... on DiscountCodeApplication { code } ... on AutomaticDiscountApplication { title } "
            "... on ManualDiscountApplication { title description } ... on ScriptDiscountApplication { title }",
            page_size=2,
            follow_up_size=200,
        ),
    ),
    page_size=5,
)

PRODUCTS = ObjectSpec(
    root="products",
    singular="product",
    fields=(
        "id legacyResourceId title handle vendor productType status tags createdAt updatedAt publishedAt "
        "totalInventory tracksInventory hasOnlyDefaultVariant"
    ),
    nested=(
        Nested(
            "variants",
            "__typename id legacyResourceId title displayName sku barcode position price compareAtPrice "
            "inventoryQuantity availableForSale taxable createdAt updatedAt selectedOptions { name value } "
            f"inventoryItem {{ id tracked unitCost {MONEY_V2} }}",
            page_size=25,
            follow_up_size=200,
        ),
    ),
    page_size=8,
)

CUSTOMERS = ObjectSpec(
    root="customers",
    singular="customer",
    fields=(
        "id legacyResourceId firstName lastName displayName state locale tags verifiedEmail "
        "createdAt updatedAt numberOfOrders "
        f"amountSpent {MONEY_V2} defaultEmailAddress {{ emailAddress marketingState }} "
        f"defaultAddress {ADDRESS}"
    ),
    nested=(),
    page_size=200,
)

SPECS = {spec.root: spec for spec in (ORDERS, PRODUCTS, CUSTOMERS)}


def _own_fields(spec: ObjectSpec, *, bulk: bool) -> str:
    if "{refund_line_items}" not in spec.fields:
        return spec.fields
    if bulk:
        connection = f"refundLineItems {{ edges {{ node {{ {REFUND_LINE_ITEM_SELECTION} }} }} }}"
    else:
        connection = (
            f"refundLineItems(first: {REFUND_LINE_ITEMS_PAGE_SIZE}) {{ pageInfo {{ hasNextPage }} "
            f"nodes {{ {REFUND_LINE_ITEM_SELECTION} }} }}"
        )
    return spec.fields.replace("{refund_line_items}", connection)


def bulk_query(spec: ObjectSpec, search: str | None = None) -> str:
    """The inner query of a bulk operation: every object (matching `search`) with its children.

    Bulk queries take no variables and no page sizes; nested connections come back as their own
    JSONL lines carrying `__parentId`.
    """
    arguments = "sortKey: UPDATED_AT" + (f", query: {json.dumps(search)}" if search else "")
    nested = " ".join(f"{n.field} {{ edges {{ node {{ {n.selection} }} }} }}" for n in spec.nested)
    return f"{{ {spec.root}({arguments}) {{ edges {{ node {{ {_own_fields(spec, bulk=True)} {nested} }} }} }} }}"


def page_query(spec: ObjectSpec) -> str:
    """One page of objects updated since a time, oldest change first."""
    nested = " ".join(
        f"{n.field}(first: {n.page_size}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {n.selection} }} }}"
        for n in spec.nested
    )
    name = spec.root.capitalize() + "Page"
    return (
        f"query {name}($first: Int!, $after: String, $query: String) {{ "
        f"{spec.root}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{ "
        f"pageInfo {{ hasNextPage endCursor }} nodes {{ {_own_fields(spec, bulk=False)} {nested} }} }} }}"
    )


def node_query(spec: ObjectSpec) -> str:
    """One object by id, with the same fields and first pages as `page_query` (quarantine replay)."""
    nested = " ".join(
        f"{n.field}(first: {n.page_size}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {n.selection} }} }}"
        for n in spec.nested
    )
    name = spec.singular.capitalize() + "Replay"
    return f"query {name}($id: ID!) {{ {spec.singular}(id: $id) {{ {_own_fields(spec, bulk=False)} {nested} }} }}"


COUNT_COST = 1.0  # the points a count query requests: one object (Shopify's cost rules)


def count_query(spec: ObjectSpec, limit: int) -> str:
    """How many objects match a search, counting no further than `limit` (cheap: one object)."""
    name = spec.root.capitalize() + "Count"
    return f"query {name}($query: String) {{ {spec.root}Count(query: $query, limit: {limit}) {{ count precision }} }}"


def nested_page_query(spec: ObjectSpec, nested: Nested) -> str:
    """The rest of one object's nested connection, when it did not fit in the object's page."""
    name = spec.singular.capitalize() + nested.field[0].upper() + nested.field[1:]
    return (
        f"query {name}($id: ID!, $after: String) {{ {spec.singular}(id: $id) {{ id "
        f"{nested.field}(first: {nested.follow_up_size}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} "
        f"nodes {{ {nested.selection} }} }} }} }}"
    )


ORDER_REFUNDS_QUERY = (
    "query OrderRefundLineItems($id: ID!) { order(id: $id) { id refunds { id "
    f"refundLineItems(first: {REFUND_LINE_ITEMS_FOLLOW_UP_PAGE_SIZE}) {{ pageInfo {{ hasNextPage }} "
    f"nodes {{ {REFUND_LINE_ITEM_SELECTION} }} }} }} }} }}"
)

# groupObjects: each object's child lines follow its own line, so a block of whole lines holds whole
# objects and the contract can set an order aside with all its lines (contract.py, arrow.blocks).
BULK_RUN_MUTATION = (
    "mutation BulkRun($query: String!) { bulkOperationRunQuery(query: $query, groupObjects: true) { "
    "bulkOperation { id status createdAt } userErrors { field message code } } }"
)

BULK_POLL_QUERY = (
    "query BulkPoll($id: ID!) { bulkOperation(id: $id) { id status errorCode createdAt completedAt "
    "objectCount rootObjectCount url partialDataUrl } }"
)

# When the shop was created: no record of it can be older (the contract's floor for its dates).
SHOP_QUERY = "query ShopCreated { shop { createdAt } }"


def all_documents() -> dict[str, str]:
    """Every document the connector can send, by name, for schema validation."""
    documents = {
        "BulkRun": BULK_RUN_MUTATION,
        "BulkPoll": BULK_POLL_QUERY,
        "OrderRefundLineItems": ORDER_REFUNDS_QUERY,
        "ShopCreated": SHOP_QUERY,
    }
    for spec in SPECS.values():
        documents[f"{spec.root}:page"] = page_query(spec)
        documents[f"{spec.root}:count"] = count_query(spec, 500)
        documents[f"{spec.root}:replay"] = node_query(spec)
        documents[f"{spec.root}:bulk"] = bulk_query(spec, "updated_at:>='2026-01-01T00:00:00Z'")
        for nested in spec.nested:
            documents[f"{spec.root}:{nested.field}"] = nested_page_query(spec, nested)
    return documents
