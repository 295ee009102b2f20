"""The Stripe contract: what every object must satisfy before it counts.

Checked on the raw-table rows (flattened, pinned API shape: feed.py) of one object and its
children (a subscription's items, an invoice's lines); an object that breaks any rule is set aside
whole (quarantine.py). The rules follow Stripe's API reference:

| object | rules |
|---|---|
| every object | `id` present; `created` a whole number of seconds, not after now plus a day |
| customer, subscription, invoice, line, price | `currency` an ISO 4217 code (Stripe sends it lower-case) |
| price (and the price of every subscription item) | `unit_amount` a whole number, not negative; a `per_unit` price has `unit_amount` or `unit_amount_decimal`; a recurring price's interval is day, week, month or year, its count at least 1 |
| subscription | `start_date`, `current_period_start` of items, `canceled_at`, `ended_at` not after now plus a day; an item's `quantity` a whole number >= 0 (metered items have none) |
| invoice | `amount_due`, `amount_paid`, `amount_remaining` whole, not negative; `period_start`, status times not after now plus a day |
| invoice line | `amount` whole, negative only on a proration (a credit for unused time); `period.start` not after now plus a day |
| coupon | `amount_off` whole and positive (with a currency), `percent_off` in (0, 100] |
| invoice, line, price, subscription item, coupon | every money amount the models read (and an item's price × quantity) below 10^13 in major units: what the warehouse holds (quarantine.AMOUNT_LIMIT) |
| every object | every whole number, nested ones included, within 64 bits (the raw tables' bigint) |

Stripe has no endpoint that dates a standard account to a restricted key, so there is no lower
bound on dates beyond "after 1970" (docs/operations.md, "Quarantine").
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.currencies import stripe_digits
from pipelines.ingest.quarantine import (
    AMOUNT_LIMIT,
    AMOUNT_REASON,
    BIGINT,
    Bounds,
    Violation,
    currency_reason,
)

INTERVALS = {"day", "week", "month", "year"}
# Per table: timestamp columns that must be sane (not after now plus a day, not before 1970).
TIMES = {
    "customers": ("created",),
    "products": ("created",),
    "prices": ("created",),
    "coupons": ("created",),
    "discounts": ("start",),
    "subscriptions": ("created", "start_date", "canceled_at", "ended_at"),
    "subscription_items": ("created", "current_period_start"),
    "invoices": ("created", "period_start", "status_transitions__finalized_at", "status_transitions__paid_at"),
    "invoice_lines": ("period__start",),
}
CURRENCY_TABLES = {"customers", "prices", "subscriptions", "invoices", "invoice_lines"}
NON_NEGATIVE = {"invoices": ("amount_due", "amount_paid", "amount_remaining")}
# Per table: the money columns the models read, in minor units, and the column of their currency.
MONEY = {
    "invoices": ("currency", ("amount_due", "amount_paid", "amount_remaining", "subtotal", "total", "total_excluding_tax")),
    "invoice_lines": ("currency", ("amount",)),
    "prices": ("currency", ("unit_amount",)),
    "subscription_items": ("price__currency", ("price__unit_amount",)),
    "coupons": ("currency", ("amount_off",)),
}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wide(value: Any) -> bool:
    """Whether `value` (a JSON value: its whole numbers are exactly `int`, `bool` aside) holds a whole
    number outside 64 bits, at any depth. Called on every value of every row, hence `type(...) is`."""
    kind = type(value)
    if kind is int:
        return not BIGINT[0] <= value <= BIGINT[1]
    if kind is dict:
        return any(map(_wide, value.values()))
    if kind is list:
        return any(map(_wide, value))
    return False


# quarantine.AMOUNT_LIMIT in minor units, by the currency's decimals (0, 2 or 3 in Stripe's amounts)
_MINOR_LIMITS = {digits: int(AMOUNT_LIMIT) * 10**digits for digits in (0, 2, 3)}


def _minor_limit(currency: Any) -> int:
    """quarantine.AMOUNT_LIMIT in Stripe's minor units of `currency` (hundredths where the currency is
    unknown, as the models divide)."""
    return _MINOR_LIMITS[stripe_digits(currency if isinstance(currency, str) else "usd")]


def _amount_reason(minor: int, currency: Any) -> str | None:
    """quarantine.amount_reason of Stripe's whole `minor` units in major units, compared as whole
    numbers: no Decimal per amount."""
    return AMOUNT_REASON if abs(minor) >= _minor_limit(currency) else None


def _fractional(value: Any) -> bool:
    """Whether a `unit_amount_decimal` holds a fraction of a minor unit (so `unit_amount` is null)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return False
    return value is not None and amount.is_finite() and amount != amount.to_integral_value()


class Checks:
    """Collects the violations of one object's rows."""

    def __init__(self, bounds: Bounds, ints_fit: bool = False):
        self.bounds = bounds
        self.ints_fit = ints_fit  # every whole number is known to be within 64 bits: that walk is skipped
        self.found: list[Violation] = []

    def add(self, table: str, row: dict[str, Any], field: str, reason: str) -> None:
        self.found.append(Violation(table, row.get("id"), field, reason, row.get(field)))

    def row(self, table: str, row: dict[str, Any]) -> None:
        """Every rule of `table` on one row."""
        if not row.get("id"):
            self.add(table, row, "id", "required but missing")
        for column in TIMES.get(table, ()):
            self.moment(table, row, column)
        if table in CURRENCY_TABLES:
            reason = currency_reason(row.get("currency"))
            if reason:
                self.add(table, row, "currency", reason)
        for column in NON_NEGATIVE.get(table, ()):
            self.amount(table, row, column)
        if table == "prices":
            self.price(table, row, "")
        elif table == "subscription_items":
            self.price(table, row, "price__")
            if row.get("price__recurring__usage_type") != "metered" and row.get("quantity") is None:
                self.add(table, row, "quantity", "required but missing")
            elif row.get("quantity") is not None and not (_whole(row["quantity"]) and row["quantity"] >= 0):
                self.add(table, row, "quantity", "not a whole number of at least 0")
        elif table == "invoice_lines":
            self.line(row)
        elif table == "coupons":
            self.coupon(row)
        self.money(table, row)

    def money(self, table: str, row: dict[str, Any]) -> None:
        """Amounts the warehouse holds: money below quarantine.AMOUNT_LIMIT, every whole number in 64 bits."""
        reported = {v.field for v in self.found if v.record_table == table and v.record_id == row.get("id")}
        currency_column, columns = MONEY.get(table, ("", ()))
        currency = row.get(currency_column)
        limit = _minor_limit(currency) if columns else 0
        for column in columns:
            value = row.get(column)
            if _whole(value) and abs(value) >= limit and column not in reported:  # _amount_reason, one limit a row
                self.add(table, row, column, AMOUNT_REASON)
                reported.add(column)
        quantity, unit = row.get("quantity"), row.get("price__unit_amount")
        if table == "subscription_items" and _whole(quantity) and _whole(unit) and "quantity" not in reported:
            reason = _amount_reason(quantity * unit, currency)
            if reason:
                self.add(table, row, "quantity", f"{reason}, as price × quantity")
                reported.add("quantity")
        for column, value in () if self.ints_fit else row.items():
            if column not in reported and _wide(value):
                self.add(table, row, column, "a whole number beyond 64 bits (the warehouse's bigint)")

    def moment(self, table: str, row: dict[str, Any], column: str) -> None:
        value = row.get(column)
        if value is None:
            if column == "created" and table != "invoice_lines":
                self.add(table, row, column, "required but missing")
            return
        if not _whole(value):
            self.add(table, row, column, "not a Unix timestamp (whole seconds)")
            return
        earliest, latest = self.bounds.whole_seconds
        if earliest <= value <= latest:
            return  # the common case, decided without a datetime
        if value <= 0:
            self.add(table, row, column, "not after 1970")
            return
        try:
            moment = datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            self.add(table, row, column, "not a representable time")
            return
        reason = self.bounds.reason(moment)
        if reason:
            self.add(table, row, column, reason)

    def amount(self, table: str, row: dict[str, Any], column: str) -> None:
        value = row.get(column)
        if value is None:
            return
        if not _whole(value):
            self.add(table, row, column, "not a whole number of minor units")
        elif value < 0:
            self.add(table, row, column, "negative amount")

    def price(self, table: str, row: dict[str, Any], prefix: str) -> None:
        """A price's own rules, on a price row or on the `price__` columns of a subscription item."""
        self.amount(table, row, f"{prefix}unit_amount")
        if prefix:
            reason = currency_reason(row.get(f"{prefix}currency"))
            if reason:
                self.add(table, row, f"{prefix}currency", reason)
        # A per-unit price has an amount: `unit_amount` whenever it is whole (Stripe: "represented as a
        # whole integer if possible"), else a fractional `unit_amount_decimal`, or one the customer
        # chooses (`custom_unit_amount`).
        priced = (row.get(f"{prefix}unit_amount") is not None
                  or _fractional(row.get(f"{prefix}unit_amount_decimal"))
                  or any(key.startswith(f"{prefix}custom_unit_amount") for key in row))
        if row.get(f"{prefix}billing_scheme", "per_unit") == "per_unit" and not priced:
            self.add(table, row, f"{prefix}unit_amount", "missing on a per-unit price")
        interval = row.get(f"{prefix}recurring__interval")
        if interval is not None and interval not in INTERVALS:
            self.add(table, row, f"{prefix}recurring__interval", "not day, week, month or year")
        count = row.get(f"{prefix}recurring__interval_count")
        if interval is not None and not (_whole(count) and count >= 1):
            self.add(table, row, f"{prefix}recurring__interval_count", "not a whole number of at least 1")

    def line(self, row: dict[str, Any]) -> None:
        value = row.get("amount")
        if value is None:
            self.add("invoice_lines", row, "amount", "required but missing")
        elif not _whole(value):
            self.add("invoice_lines", row, "amount", "not a whole number of minor units")
        elif value < 0 and not (row.get("parent__subscription_item_details__proration")
                                or row.get("parent__invoice_item_details__proration")):
            self.add("invoice_lines", row, "amount", "negative amount on a line that is not a proration")

    def coupon(self, row: dict[str, Any]) -> None:
        amount_off, percent_off = row.get("amount_off"), row.get("percent_off")
        if amount_off is not None:
            if not (_whole(amount_off) and amount_off > 0):
                self.add("coupons", row, "amount_off", "not a positive whole number of minor units")
            reason = currency_reason(row.get("currency")) or (None if row.get("currency") else "required with amount_off")
            if reason:
                self.add("coupons", row, "currency", reason)
        if percent_off is not None and (isinstance(percent_off, bool) or not isinstance(percent_off, (int, float))
                                        or not 0 < percent_off <= 100):
            self.add("coupons", row, "percent_off", "not a percentage in (0, 100]")


def violations(table: str, row: dict[str, Any], children: tuple[str, list[dict[str, Any]]] | None,
               bounds: Bounds, *, ints_fit: bool = False) -> list[Violation]:
    """What is wrong with one object: its row, and its children's rows (`(child table, rows)`).
    `ints_fit`: the caller knows every whole number in them is within 64 bits (client.Page), so
    that rule's walk over every value is skipped."""
    checks = Checks(bounds, ints_fit)
    checks.row(table, row)
    if children is not None:
        child_table, rows = children
        for child in rows:
            checks.row(child_table, child)
    return checks.found


def object_time(row: dict[str, Any], bounds: Bounds) -> datetime | None:
    """The object's creation time when it is sane (what `metrics.data_quality_daily` dates it by)."""
    created = row.get("created")
    if not _whole(created) or created <= 0:
        return None
    try:
        moment = datetime.fromtimestamp(created, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if bounds.reason(moment) is None else None
