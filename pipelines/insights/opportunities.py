"""Risks and opportunities: the customers, products and cohorts worth acting on, with money at stake.

Four rules, each a pure function of frames the asset reads from the marts and metric tables
(docs/analysts.md, `insights.opportunities`); every item says what is at stake over the next 12
months if nothing is done (or if the change lasts) and what to do, in the workspace's language:

- `churn_risk` (SaaS): a paying customer with a past_due or unpaid subscription or a requested
  cancellation, or a failed payment, a downgrade or fewer seats in the last 30 days. At stake:
  12 × (their MRR now + the MRR they took away in that window, or at their cancellation request).
- `segment_slip` (ecommerce): a customer who was champions or loyal the week before and fell to
  at risk, needs attention or hibernating in the latest week. At stake: their net sales of the last
  365 days (what a year without them costs).
- `product_trend` (ecommerce): a product whose share of the shop's net sales over the last 4
  weeks moved away from its previous 12 weeks by more than 3 standard errors and 25%. At stake: the
  change in weekly net sales × 52. Shares, not amounts, so a season that lifts every product is no
  break.
- `cohort_retention`: an acquisition month whose retention at its latest complete month of age is
  more than 3 binomial standard errors (ecommerce, customers active) or 3 robust deviations (SaaS,
  net revenue retention) from the other cohorts' median at that age. At stake: the gap × the
  cohort's customers × usual monthly value per active customer × 12 (ecommerce), or the gap × its
  starting MRR × 12 (SaaS).
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.insights.wording import Wording

WINDOW_DAYS = 30  # how recent a SaaS churn signal must be
VALUABLE = ("champions", "loyal")
SLIPPED = ("at_risk", "needs_attention", "hibernating")
# A customer's churn signals, in the order their evidence lists them.
SIGNALS = ("failed_payment", "past_due", "unpaid", "cancellation_requested", "fewer_seats", "downgrade")
REQUESTED = 1 << SIGNALS.index("cancellation_requested")
RECENT_WEEKS, BASE_WEEKS = 4, 12
MIN_Z = 3.0
MIN_SHARE_CHANGE = 0.25
MIN_PRODUCT_SHARE = 0.005  # products under 0.5% of sales in both periods are noise, not trends
MIN_COHORTS = 3  # other cohorts of the same age needed for a "usual"
COHORT_AGES = 12  # cohorts compared over their first year
COLUMNS = ["opportunity_id", "workspace_id", "as_of", "kind", "direction", "subject_type", "subject_id", "subject",
           "money_at_stake", "currency", "evidence", "action", "rank"]


def churn_risks(customers: pd.DataFrame, subscriptions: pd.DataFrame, invoices: pd.DataFrame,
                movements: pd.DataFrame, seats: pd.DataFrame, as_of: date, wording: Wording) -> pd.DataFrame:
    """SaaS customers showing churn signals in the WINDOW_DAYS to `as_of`.

    Args:
        customers: `customer_id, customer_name, email, current_mrr` (reporting currency).
        subscriptions: `customer_id, status, cancel_at_period_end, cancel_at, ended_at`.
        invoices: `customer_id, status, amount_remaining, created_at` of recent invoices.
        movements: `customer_id, change_date, movement_type, delta` (reporting currency) of the
            last year: signals read the window, a requested cancellation its latest churn movement.
        seats: `customer_id, changed_on, quantity_before, quantity_after` of seat changes.
        as_of: the last data day.
        wording: the workspace's language and currency.
    """
    since = pd.Timestamp(as_of - timedelta(days=WINDOW_DAYS))
    flagged: list[pd.DataFrame] = []  # each signal's customers, in the order the signals are looked at

    def flag(ids: pd.Series, signal: str) -> None:
        flagged.append(pd.DataFrame({"customer_id": ids.drop_duplicates().to_numpy(), "signal": SIGNALS.index(signal)}))

    live = subscriptions[subscriptions["ended_at"].isna()]
    flag(invoices.loc[invoices["status"].isin(["open", "uncollectible"]) & (invoices["amount_remaining"] > 0)
                      & (_days(invoices["created_at"]) >= since), "customer_id"], "failed_payment")
    flag(live.loc[live["status"] == "past_due", "customer_id"], "past_due")
    flag(live.loc[live["status"] == "unpaid", "customer_id"], "unpaid")
    requested = live["cancel_at_period_end"].fillna(False).astype(bool) | live["cancel_at"].notna()
    flag(live.loc[requested & live["status"].isin(["active", "past_due", "trialing"]), "customer_id"],
         "cancellation_requested")
    movements = movements.astype({"delta": "float64"})  # a column of nulls only comes back as objects
    recent = movements[_days(movements["change_date"]) >= since]
    fewer_seats = seats[(_days(seats["changed_on"]) >= since) & (seats["quantity_after"] < seats["quantity_before"])]
    flag(fewer_seats["customer_id"], "fewer_seats")
    downgraded = recent.loc[recent["movement_type"] == "contraction", "customer_id"]
    flag(downgraded[~downgraded.isin(fewer_seats["customer_id"])], "downgrade")
    found = pd.concat(flagged, ignore_index=True)
    if found.empty:
        return _empty()
    # One row per customer, in the order they were first flagged; their signals as bits, in SIGNALS' order.
    codes, ids = pd.factorize(found["customer_id"], use_na_sentinel=False)
    masks = np.zeros(len(ids), dtype=np.int64)
    np.bitwise_or.at(masks, codes, 1 << found["signal"].to_numpy(dtype=np.int64))
    ids = pd.Index(ids, dtype=object)
    # Amounts in the reporting currency: one converted without a rate is unknown (null, docs/metrics.md
    # "A missing rate"), and so is any stake it is part of: NaN here, never 0.
    taken = recent[recent["movement_type"].isin(["churn", "contraction"])]
    lost = -taken.groupby("customer_id")["delta"].sum(min_count=1)
    lost[lost.index.isin(taken.loc[taken["delta"].isna(), "customer_id"])] = np.nan
    # A requested cancellation took its MRR away on the request day, which may be months before the
    # period ends (an annual plan): what is at stake is what that day took.
    requests = movements[movements["movement_type"] == "churn"].sort_values("change_date")
    requested_loss = -requests.groupby("customer_id")["delta"].last(skipna=False)
    people = customers.set_index("customer_id")
    known = ids.isin(people.index)
    mine = people.reindex(ids)
    now = [_amount(value) if present else 0.0 for value, present in zip(mine["current_mrr"].tolist(), known)]
    gone = lost.reindex(ids, fill_value=0.0).astype("float64").tolist()
    asked = requested_loss.reindex(ids, fill_value=0.0).astype("float64").tolist()
    names = [_first_text(name, email, customer_id) if present else customer_id
             for name, email, customer_id, present in zip(mine["customer_name"].tolist(), mine["email"].tolist(),
                                                           ids, known)]
    # Each combination of signals is worded once: its list of signals and what to do first.
    said = {mask: (", ".join(wording.say(f"opp.signal.{signal}") for signal in _signals(mask)),
                   f"opp.churn_risk.action.{_churn_action(_signals(mask))}") for mask in set(masks.tolist())}
    kept = []
    for customer_id, mask, now_mrr, took, request, name in zip(ids, masks.tolist(), now, gone, asked, names):
        if mask & REQUESTED:
            took = math.nan if math.isnan(took) or math.isnan(request) else max(took, request)
        monthly = now_mrr + max(took, 0.0) if not math.isnan(took) else math.nan
        if not monthly <= 0:  # nothing paid, nothing at stake (a trial's cancellation); unknown is kept
            kept.append((customer_id, mask, monthly, name))
    # plans repeat: each amount worded once (an unknown one, NaN, is "n/a")
    amounts = {monthly: wording.money(monthly) for monthly in {monthly for _, _, monthly, _ in kept}}
    rows = []
    for customer_id, mask, monthly, name in kept:
        words, action = said[mask]
        mrr = amounts[monthly] if not math.isnan(monthly) else wording.money(None)
        rows.append(_item("churn_risk", "risk", "customer", customer_id, name, 12 * monthly, wording,
                          evidence=wording.say("opp.churn_risk.evidence", signals=words, mrr=mrr),
                          action=wording.say(action, name=name)))
    return _frame(rows)


def _signals(mask: int) -> list[str]:
    return [signal for bit, signal in enumerate(SIGNALS) if mask & (1 << bit)]


def _churn_action(signals: list[str]) -> str:
    """The most telling signal decides what to do first."""
    for signal in ("failed_payment", "past_due", "unpaid", "cancellation_requested"):
        if signal in signals:
            return "payment" if signal in ("failed_payment", "past_due", "unpaid") else "cancellation"
    return "downgrade"


def segment_slips(segments: pd.DataFrame, year_sales: pd.DataFrame, wording: Wording) -> pd.DataFrame:
    """Customers who fell from champions or loyal to a lapsing segment in the latest week.

    Args:
        segments: the latest week's `person_id, email, segment, previous_segment, recency_days, frequency`.
        year_sales: `person_id, net_sales_365d` (net sales of the last 365 days).
        wording: the workspace's language and currency.
    """
    slipped = segments[segments["previous_segment"].isin(VALUABLE) & segments["segment"].isin(SLIPPED)]
    sales = year_sales.set_index("person_id")["net_sales_365d"]
    rows = []
    for row in slipped.itertuples(index=False):
        stake = float(sales.get(row.person_id, 0.0) or 0.0)
        if stake <= 0:
            continue
        name = row.email if isinstance(row.email, str) and row.email else row.person_id
        rows.append(_item(
            "segment_slip", "risk", "customer", row.person_id, name, stake, wording,
            evidence=wording.say("opp.segment_slip.evidence", before=wording.say(f"segment.{row.previous_segment}"),
                                 after=wording.say(f"segment.{row.segment}"), orders=int(row.frequency),
                                 days=int(row.recency_days), sales=wording.money(stake)),
            action=wording.say("opp.segment_slip.action", name=name, days=int(row.recency_days))))
    return _frame(rows)


def product_trends(weekly: pd.DataFrame, wording: Wording) -> pd.DataFrame:
    """Products whose share of net sales broke from its trend: the last RECENT_WEEKS against the
    BASE_WEEKS before.

    Args:
        weekly: `week_start, product, net_sales` (product: its title, as the slices name it), complete
            weeks only.
        wording: the workspace's language and currency.
    """
    weeks = sorted(weekly["week_start"].unique())
    if len(weeks) < RECENT_WEEKS + BASE_WEEKS:
        return _empty()
    weeks = weeks[-(RECENT_WEEKS + BASE_WEEKS):]
    table = weekly[weekly["week_start"].isin(weeks)].pivot_table(
        index="week_start", columns="product", values="net_sales", aggfunc="sum").reindex(weeks).fillna(0.0)
    totals = table.sum(axis=1)
    if (totals <= 0).any():
        return _empty()
    shares = table.div(totals, axis=0)
    recent, base = shares.iloc[-RECENT_WEEKS:], shares.iloc[:BASE_WEEKS]
    recent_total = float(totals.iloc[-RECENT_WEEKS:].mean())
    rows = []
    for product in shares.columns:
        now, before = float(recent[product].mean()), float(base[product].mean())
        if max(now, before) < MIN_PRODUCT_SHARE or before <= 0:
            continue
        error = float(base[product].std(ddof=1)) / np.sqrt(RECENT_WEEKS)
        change = (now - before) / before
        if abs(change) < MIN_SHARE_CHANGE or (error > 0 and abs(now - before) / error < MIN_Z):
            continue
        weekly_gap = (now - before) * recent_total
        up = now > before
        name = str(product)
        rows.append(_item(
            "product_trend", "opportunity" if up else "risk", "product", str(product), name, abs(weekly_gap) * 52,
            wording,
            evidence=wording.say("opp.product_trend.evidence", share=wording.percent(now), usual=wording.percent(before),
                                 weeks=RECENT_WEEKS, base=BASE_WEEKS, weekly=wording.money(weekly_gap, signed=True)),
            action=wording.say(f"opp.product_trend.action.{'up' if up else 'down'}", name=name)))
    return _frame(rows)


def cohort_retention(cohorts: pd.DataFrame, vertical: str, wording: Wording) -> pd.DataFrame:
    """Cohorts retaining better or worse than the others at the same age.

    Args:
        cohorts: complete months of `metrics.ecommerce_cohorts` (`cohort_month, months_since_first_order,
            cohort_customers, active_customers, retention_rate, net_sales`) or of `metrics.saas_cohorts`
            (`cohort_month, months_since_start, cohort_customers, starting_mrr, net_revenue_retention`).
        vertical: "ecommerce" or "saas".
        wording: the workspace's language and currency.
    """
    age = "months_since_first_order" if vertical == "ecommerce" else "months_since_start"
    numbers = [c for c in ("cohort_customers", "active_customers", "retention_rate", "net_sales", "starting_mrr",
                           "net_revenue_retention", age) if c in cohorts.columns]
    cohorts = cohorts.astype({column: "float64" for column in numbers})
    frame = cohorts[(cohorts[age] >= 1) & (cohorts[age] <= COHORT_AGES)].dropna(subset=numbers).copy()
    if frame.empty:
        return _empty()
    frame["cohort_month"] = pd.to_datetime(frame["cohort_month"])
    latest = frame.sort_values(age).groupby("cohort_month").tail(1)
    rows = []
    for row in latest.itertuples(index=False):
        months = int(getattr(row, age))
        peers = frame[(frame[age] == months) & (frame["cohort_month"] != row.cohort_month)]
        if len(peers) < MIN_COHORTS:
            continue
        if vertical == "ecommerce":
            rate, usual = float(row.retention_rate), float(peers["retention_rate"].median())
            error = np.sqrt(max(usual * (1 - usual), 1e-9) / float(row.cohort_customers))
            per_active = float(peers["net_sales"].sum() / max(peers["active_customers"].sum(), 1))
            stake = (rate - usual) * float(row.cohort_customers) * per_active * 12
        else:
            rate, usual = float(row.net_revenue_retention), float(peers["net_revenue_retention"].median())
            deviation = 1.4826 * float((peers["net_revenue_retention"] - usual).abs().median())
            error = max(deviation, 1e-9)
            stake = (rate - usual) * float(row.starting_mrr) * 12
        if abs(rate - usual) / error < MIN_Z or stake == 0:
            continue
        better = rate > usual
        month = row.cohort_month.strftime("%Y-%m")
        rows.append(_item(
            "cohort_retention", "opportunity" if better else "risk", "cohort", month,
            wording.say("opp.cohort", month=month), abs(stake), wording,
            evidence=wording.say(f"opp.cohort_retention.evidence.{vertical}", month=month, months=months,
                                 rate=wording.percent(rate), usual=wording.percent(usual), cohorts=len(peers)),
            action=wording.say(f"opp.cohort_retention.action.{'better' if better else 'worse'}", month=month)))
    return _frame(rows)


def rank(found: list[pd.DataFrame], workspace_id: str, as_of: date | None, currency: str) -> pd.DataFrame:
    """Every rule's items in one table, most money at stake first (rank 1)."""
    frames = [frame for frame in found if not frame.empty]
    items = pd.concat(frames, ignore_index=True) if frames else _empty()
    items = items.sort_values(["money_at_stake", "kind", "subject_id"], ascending=[False, True, True],
                              ignore_index=True)
    items["workspace_id"] = workspace_id
    items["as_of"] = pd.Series(pd.Timestamp(as_of), index=items.index, dtype="datetime64[us]")
    items["currency"] = currency
    items["opportunity_id"] = workspace_id + ":" + items["kind"] + ":" + items["subject_id"].astype(str)
    items["rank"] = np.arange(1, len(items) + 1)
    return items[COLUMNS].astype({"money_at_stake": "float64", "rank": "int64"})


def _item(kind: str, direction: str, subject_type: str, subject_id: str, subject: str, stake: float,
          wording: Wording, *, evidence: str, action: str) -> dict:
    return {"kind": kind, "direction": direction, "subject_type": subject_type, "subject_id": str(subject_id),
            "subject": str(subject), "money_at_stake": round(float(stake), 2), "evidence": evidence, "action": action}


def _amount(value: object) -> float:
    """A converted amount as a float: NaN when it is unknown (null: no exchange rate)."""
    return math.nan if value is None or pd.isna(value) else float(value)


def _first_text(*values: object) -> object:
    """The first non-empty text of `values`, else the last value (a customer's name, e-mail, id)."""
    for value in values[:-1]:
        if isinstance(value, str) and value:
            return value
    return values[-1]


def _marks(values: tuple[str, ...]) -> str:
    """The placeholders of an `in (...)` list of `values`."""
    return ", ".join(["%s"] * len(values))


def _days(values: pd.Series) -> pd.Series:
    """Dates or timestamps (naive or zoned) as naive midnights, comparable with each other."""
    return pd.to_datetime(values, utc=True).dt.tz_localize(None).dt.normalize()


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows) if rows else _empty()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="float64" if column == "money_at_stake" else "object")
                         for column in ["kind", "direction", "subject_type", "subject_id", "subject",
                                        "money_at_stake", "evidence", "action"]})


def workspace_opportunities(query, workspace_id: str, vertical: str, currency: str, wording: Wording,
                            as_of: date | None) -> pd.DataFrame:
    """Every rule of the workspace's vertical on its tables as of `as_of` (the last data day), ranked;
    no rows for a workspace without data (`as_of` None).

    Args:
        query: `Warehouse.query` (SQL with %s parameters, returning a frame).
        workspace_id, vertical, currency: the workspace.
        wording: its language and currency.
        as_of: the last data day.
    """
    if as_of is None:
        return rank([], workspace_id, None, currency)
    since = as_of - timedelta(days=WINDOW_DAYS)
    month_start = as_of.replace(day=1)
    if vertical == "saas":
        seats = query(
            "select versions.customer_id, items.valid_from, items.quantity as quantity_after, "
            "items.previous_quantity as quantity_before from ("
            " select subscription_id, valid_from, quantity,"
            " lag(quantity) over (partition by subscription_id, price_id order by valid_from) as previous_quantity"
            " from staging.stg_stripe__subscription_version_items where workspace_id = %s) items "
            "inner join staging.stg_stripe__subscription_versions versions on versions.workspace_id = %s"
            " and versions.subscription_id = items.subscription_id and versions.valid_from = items.valid_from "
            "where items.quantity < items.previous_quantity",
            [workspace_id, workspace_id])
        seats["changed_on"] = pd.to_datetime(seats["valid_from"], unit="s").dt.normalize()
        found = [
            churn_risks(
                query("select customer_id, customer_name, email, current_mrr from marts.saas_customers "
                      "where workspace_id = %s", [workspace_id]),
                query("select customer_id, status, cancel_at_period_end, cancel_at, ended_at from marts.subscriptions "
                      "where workspace_id = %s and ended_at is null", [workspace_id]),
                query("select customer_id, status, amount_remaining, created_at from marts.invoices "
                      "where workspace_id = %s and status in ('open', 'uncollectible') and created_at >= %s",
                      [workspace_id, since]),
                query("select customer_id, change_date, movement_type, delta from marts.mrr_movements "
                      "where workspace_id = %s and change_date >= %s", [workspace_id, as_of - timedelta(days=366)]),
                seats, as_of, wording),
            cohort_retention(query("select * from metrics.saas_cohorts where workspace_id = %s and activity_month < %s",
                                   [workspace_id, month_start]), "saas", wording),
        ]
    else:
        last_week = query("select max(week_start) as week_start from metrics.ecommerce_customer_segments "
                          "where workspace_id = %s", [workspace_id])["week_start"].iloc[0]
        # complete Monday-to-Sunday weeks up to as_of
        weeks_end = as_of - timedelta(days=(as_of.weekday() + 1) % 7)
        weeks_start = weeks_end - timedelta(days=7 * (RECENT_WEEKS + BASE_WEEKS) - 1)
        slices = query("select date, dimension_value as product, value as net_sales from metrics.ecommerce_daily_slices "
                       "where workspace_id = %s and metric = 'net_sales' and dimension = 'product' "
                       "and date between %s and %s", [workspace_id, weeks_start, weeks_end])
        days = pd.to_datetime(slices["date"])
        slices["week_start"] = days - pd.to_timedelta(days.dt.day_of_week, unit="D")
        # The latest week's slips only (the condition `segment_slips` applies), and only their sales:
        # not every customer's, a million rows at scale 1 for a few hundred slips.
        slips = ("segments.workspace_id = %s and segments.week_start = %s "
                 f"and segments.previous_segment in ({_marks(VALUABLE)}) and segments.segment in ({_marks(SLIPPED)})")
        slipped = query("select segments.person_id, customers.email, segments.segment, segments.previous_segment, "
                        "segments.recency_days, segments.frequency from metrics.ecommerce_customer_segments segments "
                        "inner join marts.customers customers on customers.workspace_id = segments.workspace_id "
                        f"and customers.person_id = segments.person_id where {slips}",
                        [workspace_id, last_week, *VALUABLE, *SLIPPED])
        # Their sales by their ids, not by the slips' condition again: the segments table is read
        # once (on Postgres each read scans all of it, 17 M rows at scale 1; docs/performance.md,
        # "The insights stage on Postgres"). `segment_slips` looks up no one else.
        people = tuple(dict.fromkeys(slipped["person_id"]))
        found = [
            segment_slips(
                slipped,
                query("select person_id, sum(discounted_sales) as net_sales_365d from marts.orders "
                      "where workspace_id = %s and not is_cancelled and order_date > %s "
                      f"and person_id in ({_marks(people)}) group by person_id",
                      [workspace_id, as_of - timedelta(days=365), *people]) if people else
                pd.DataFrame(columns=["person_id", "net_sales_365d"]),
                wording),
            product_trends(slices.astype({"net_sales": "float64"}), wording),
            cohort_retention(query("select * from metrics.ecommerce_cohorts where workspace_id = %s "
                                   "and activity_month < %s", [workspace_id, month_start]), "ecommerce", wording),
        ]
    return rank(found, workspace_id, as_of, currency)
