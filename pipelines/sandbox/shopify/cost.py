"""Shopify's calculated query cost and its leaky-bucket throttle.

Rules (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): scalars and enums cost
0, objects 1, interfaces and unions the most expensive of their possible selections, connections
2 plus `first`/`last` times the cost of one node, mutations 10. `requestedQueryCost` is charged up
front from the query alone; the difference to `actualQueryCost` (what was really returned) is
refunded afterwards.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.utilities import value_from_ast_untyped

MAX_QUERY_COST = 1000
MAX_PAGE_SIZE = 250
MUTATION_COST = 10
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


def is_connection(type_: Any) -> bool:
    return get_named_type(type_).name.endswith("Connection")


def _argument(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for arg in node.arguments:
        if arg.name.value == name:
            return value_from_ast_untyped(arg.value, variables)
    return None


def selected_fields(schema: GraphQLSchema, fragments: dict, variables: dict, type_: Any, nodes: list) -> set[str]:
    """Names (not aliases) of the fields selected on an object, through fragments."""
    found = collect_sub_fields(schema, fragments, variables, type_, nodes).values()
    return {sub[0].name.value for sub in found} - {"__typename"}


class CostCalculator:
    """Computes requestedQueryCost of one operation, checking page sizes on the way."""

    def __init__(self, schema: GraphQLSchema, fragments: dict, variables: dict[str, Any]):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def operation(self, op: OperationDefinitionNode) -> int:
        root = self.schema.mutation_type if op.operation.value == "mutation" else self.schema.query_type
        fields = collect_fields(self.schema, self.fragments, self.variables, root, op.selection_set)
        if op.operation.value == "mutation":
            return MUTATION_COST * len(fields)
        return sum(self._field(root, nodes) for nodes in fields.values())

    def _field(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        name = nodes[0].name.value
        if name.startswith("__"):
            return 0
        field_type = parent.fields[name].type
        named = get_named_type(field_type)
        if is_leaf_type(named):
            return 0
        if is_connection(named):
            first = _argument(nodes[0], "first", self.variables)
            last = _argument(nodes[0], "last", self.variables)
            size = first if first is not None else last
            if size is None:
                raise GraphQLError("you must provide one of first or last", nodes)
            if size > MAX_PAGE_SIZE:
                raise GraphQLError(
                    f"{'first' if first is not None else 'last'} cannot exceed {MAX_PAGE_SIZE}. To query larger "
                    "amounts of data with fewer limits, bulk operations should be used instead", nodes,
                    extensions={"code": "BAD_REQUEST"},
                )
            return 2 + size * self._node_cost(named, nodes)
        return 1 + self._children(named, nodes)

    def _node_cost(self, connection: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        """The cost of one node of a connection: the dearer of `edges { node }` and `nodes`."""
        best = 0
        for key, sub in collect_sub_fields(self.schema, self.fragments, self.variables, connection, nodes).items():
            name = sub[0].name.value
            if name == "nodes":
                best = max(best, 1 + self._children(get_named_type(connection.fields["nodes"].type), sub))
            elif name == "edges":
                edge = get_named_type(connection.fields["edges"].type)
                for inner in collect_sub_fields(self.schema, self.fragments, self.variables, edge, sub).values():
                    if inner[0].name.value == "node":
                        best = max(best, 1 + self._children(get_named_type(edge.fields["node"].type), inner))
        return best

    def _children(self, named: Any, nodes: list[FieldNode]) -> int:
        runtime = self.schema.get_possible_types(named) if is_abstract_type(named) else [named]
        return max(
            (
                sum(
                    self._field(obj, sub)
                    for sub in collect_sub_fields(self.schema, self.fragments, self.variables, obj, nodes).values()
                )
                for obj in runtime
            ),
            default=0,
        )


class ActualCost:
    """graphql-core middleware that adds up the cost of what was actually returned."""

    def __init__(self) -> None:
        self.total = 0

    def resolve(self, next_: Any, root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        result = next_(root, info, **args)
        named = get_named_type(info.return_type)
        if result is None or is_leaf_type(named) or info.field_name.startswith("__"):
            return result
        if info.operation.operation.value == "mutation" and len(info.path.as_list()) == 1:
            self.total += MUTATION_COST
        elif named.name.endswith("Connection"):
            self.total += 2
        elif not named.name.endswith("Edge") and named.name != "PageInfo":
            self.total += len(result) if isinstance(result, list) else 1
        return result


class ThrottleBuckets:
    """One leaky bucket per shop, refilled in real time at the account's restore rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # shop -> (available, at monotonic time)

    def _level(self, shop: str, limits: dict[str, float], now: float) -> float:
        available, at = self._state.get(shop, (limits["maximum_available"], now))
        return min(limits["maximum_available"], available + (now - at) * limits["restore_rate"])

    def take(self, shop: str, limits: dict[str, float], cost: int) -> tuple[bool, float]:
        """Charge `cost` if the bucket holds it. Returns (charged, points available afterwards)."""
        with self._lock:
            now = time.monotonic()
            level = self._level(shop, limits, now)
            charged = cost <= level
            self._state[shop] = (level - cost if charged else level, now)
            return charged, self._state[shop][0]

    def refund(self, shop: str, limits: dict[str, float], points: float) -> float:
        """Give back the part of the up-front charge that was not used. Returns points available."""
        with self._lock:
            now = time.monotonic()
            level = min(limits["maximum_available"], self._level(shop, limits, now) + points)
            self._state[shop] = (level, now)
            return level

    def level(self, shop: str, limits: dict[str, float]) -> float:
        with self._lock:
            return self._level(shop, limits, time.monotonic())


def cost_extension(requested: int | None, actual: int | None, available: float, limits: dict[str, float]) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(limits["maximum_available"]),
                "currentlyAvailable": int(available),
                "restoreRate": float(limits["restore_rate"]),
            },
        }
    }


def throttled_body(requested: int, available: float, limits: dict[str, float]) -> dict:
    """Shopify's THROTTLED response: top-level errors and extensions, no data."""
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}],
        "extensions": cost_extension(requested, None, available, limits),
    }


def max_cost_body(requested: int) -> dict:
    return {
        "errors": [
            {
                "message": (
                    f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n"
                    f"See {RATE_LIMITS_DOC} for more information on how the\ncost of a query is calculated.\n\n"
                    "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
                    "See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"
                ),
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST,
                               "documentation": RATE_LIMITS_DOC},
            }
        ]
    }
