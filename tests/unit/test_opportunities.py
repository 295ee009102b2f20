"""Risks and opportunities (pipelines/insights/opportunities.py) on hand-made tables, every amount
worked out by hand."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipelines.insights.opportunities import (
    churn_risks,
    cohort_retention,
    product_trends,
    rank,
    segment_slips,
    workspace_opportunities,
)
from pipelines.insights.wording import Wording

AS_OF = date(2026, 11, 25)
EN = Wording("en", "USD")


def saas_tables():
    customers = pd.DataFrame([
        {"customer_id": "cus_pay", "customer_name": "Pay Ltd", "email": "a@x", "current_mrr": 100.0},
        {"customer_id": "cus_due", "customer_name": None, "email": "due@x", "current_mrr": 50.0},
        {"customer_id": "cus_bye", "customer_name": "Bye Inc", "email": "b@x", "current_mrr": 0.0},
        {"customer_id": "cus_down", "customer_name": "Down Co", "email": "d@x", "current_mrr": 80.0},
        {"customer_id": "cus_seat", "customer_name": "Seat Co", "email": "s@x", "current_mrr": 40.0},
        {"customer_id": "cus_ok", "customer_name": "Fine Co", "email": "f@x", "current_mrr": 500.0},
        {"customer_id": "cus_trial", "customer_name": "Trial Co", "email": "t@x", "current_mrr": 0.0},
        {"customer_id": "cus_old", "customer_name": "Old Co", "email": "o@x", "current_mrr": 70.0},
        {"customer_id": "cus_year", "customer_name": "Year Co", "email": "y@x", "current_mrr": 0.0},
    ])
    subscriptions = pd.DataFrame([
        {"customer_id": "cus_pay", "status": "active", "cancel_at_period_end": False, "cancel_at": None, "ended_at": None},
        {"customer_id": "cus_due", "status": "past_due", "cancel_at_period_end": False, "cancel_at": None, "ended_at": None},
        {"customer_id": "cus_bye", "status": "active", "cancel_at_period_end": True, "cancel_at": None, "ended_at": None},
        {"customer_id": "cus_ok", "status": "active", "cancel_at_period_end": False, "cancel_at": None, "ended_at": None},
        # an annual plan whose cancellation was asked for in August: its MRR left then
        {"customer_id": "cus_year", "status": "active", "cancel_at_period_end": True, "cancel_at": None,
         "ended_at": None},
        # a trial that asked to cancel has paid nothing: nothing at stake
        {"customer_id": "cus_trial", "status": "trialing", "cancel_at_period_end": True, "cancel_at": None,
         "ended_at": None},
    ])
    invoices = pd.DataFrame([
        {"customer_id": "cus_pay", "status": "open", "amount_remaining": 100.0,
         "created_at": pd.Timestamp("2026-11-20 10:00", tz="UTC")},
        # paid off, or too old: no signal
        {"customer_id": "cus_ok", "status": "open", "amount_remaining": 0.0,
         "created_at": pd.Timestamp("2026-11-20", tz="UTC")},
        {"customer_id": "cus_old", "status": "open", "amount_remaining": 70.0,
         "created_at": pd.Timestamp("2026-09-01", tz="UTC")},
    ])
    movements = pd.DataFrame([
        {"customer_id": "cus_bye", "change_date": date(2026, 11, 10), "movement_type": "churn", "delta": -120.0},
        {"customer_id": "cus_down", "change_date": date(2026, 11, 1), "movement_type": "contraction", "delta": -20.0},
        {"customer_id": "cus_seat", "change_date": date(2026, 11, 2), "movement_type": "contraction", "delta": -10.0},
        {"customer_id": "cus_ok", "change_date": date(2026, 11, 2), "movement_type": "expansion", "delta": 100.0},
        {"customer_id": "cus_old", "change_date": date(2026, 10, 1), "movement_type": "contraction", "delta": -5.0},
        {"customer_id": "cus_year", "change_date": date(2026, 8, 20), "movement_type": "churn", "delta": -250.0},
    ])
    seats = pd.DataFrame([{"customer_id": "cus_seat", "changed_on": pd.Timestamp("2026-11-02"),
                           "quantity_before": 5, "quantity_after": 4}])
    return customers, subscriptions, invoices, movements, seats


def test_churn_risks_flag_each_signal_with_twelve_months_of_mrr_at_stake():
    found = churn_risks(*saas_tables(), AS_OF, EN).set_index("subject_id")
    assert sorted(found.index) == ["cus_bye", "cus_down", "cus_due", "cus_pay", "cus_seat", "cus_year"]
    # 12 × (MRR now + MRR taken away in the window)
    assert found.loc["cus_pay", "money_at_stake"] == 1200.0
    assert found.loc["cus_due", "money_at_stake"] == 600.0
    assert found.loc["cus_bye", "money_at_stake"] == 1440.0  # 0 now, 120 left at the request
    assert found.loc["cus_year", "money_at_stake"] == 3000.0  # what the request in August took away
    assert found.loc["cus_down", "money_at_stake"] == 1200.0  # (80 + 20) × 12
    assert found.loc["cus_seat", "money_at_stake"] == 600.0  # (40 + 10) × 12
    assert found.loc["cus_pay", "evidence"] == "a failed payment; $100.00 MRR"
    assert found.loc["cus_bye", "evidence"] == "cancellation requested; $120.00 MRR"
    assert "fewer seats" in found.loc["cus_seat", "evidence"] and "downgraded" not in found.loc["cus_seat", "evidence"]
    assert found.loc["cus_due", "subject"] == "due@x"  # no name: the e-mail
    assert found.loc["cus_pay", "action"].startswith("Ask Pay Ltd to update their payment method")
    assert found.loc["cus_bye", "action"].startswith("Call Bye Inc before the period ends")
    assert set(found["kind"]) == {"churn_risk"} and set(found["direction"]) == {"risk"}


def test_churn_risks_word_each_customer_as_written_out_by_hand_in_the_order_first_flagged():
    """Every signal combination worded at once per combination must still give each customer their own
    name, amount and signals: the rows below are written out by hand, not by the code's templates."""
    customers = pd.DataFrame([
        {"customer_id": "cus_a", "customer_name": "Acme", "email": "a@x", "current_mrr": 1234.5},
        {"customer_id": "cus_b", "customer_name": None, "email": "", "current_mrr": 20.0},
        {"customer_id": "cus_d", "customer_name": "", "email": "dora@x", "current_mrr": 50.0},
        {"customer_id": "cus_e", "customer_name": "Eve", "email": None, "current_mrr": 40.0},
        {"customer_id": "cus_f", "customer_name": "Trial", "email": "t@x", "current_mrr": 0.0},
        {"customer_id": "cus_g", "customer_name": "Gus", "email": "g@x", "current_mrr": 0.0},
    ])  # cus_c is in none of them
    live = {"cancel_at_period_end": False, "cancel_at": None, "ended_at": None}
    subscriptions = pd.DataFrame([
        {"customer_id": "cus_a", **live, "status": "past_due", "cancel_at": pd.Timestamp("2027-01-01")},
        {"customer_id": "cus_b", **live, "status": "unpaid"},
        {"customer_id": "cus_d", **live, "status": "active", "cancel_at_period_end": True},
        {"customer_id": "cus_f", **live, "status": "trialing", "cancel_at_period_end": True},
        {"customer_id": "cus_g", **live, "status": "active", "cancel_at_period_end": True},
        {"customer_id": "cus_e", **live, "status": "past_due", "ended_at": pd.Timestamp("2026-10-01")},  # ended
    ])
    invoices = pd.DataFrame([
        {"customer_id": "cus_a", "status": "open", "amount_remaining": 5.0, "created_at": pd.Timestamp("2026-11-20")},
        {"customer_id": "cus_a", "status": "uncollectible", "amount_remaining": 9.0,
         "created_at": pd.Timestamp("2026-11-21")},
    ])
    movements = pd.DataFrame([
        {"customer_id": "cus_a", "change_date": date(2026, 11, 20), "movement_type": "churn", "delta": -100.0},
        {"customer_id": "cus_b", "change_date": date(2026, 11, 3), "movement_type": "contraction", "delta": -30.0},
        {"customer_id": "cus_c", "change_date": date(2026, 11, 4), "movement_type": "contraction", "delta": -15.0},
        {"customer_id": "cus_e", "change_date": date(2026, 11, 5), "movement_type": "contraction", "delta": -6.0},
        {"customer_id": "cus_e", "change_date": date(2026, 11, 6), "movement_type": "contraction", "delta": -4.0},
        {"customer_id": "cus_g", "change_date": date(2026, 9, 1), "movement_type": "churn", "delta": -7.0},
    ])
    seats = pd.DataFrame([{"customer_id": "cus_c", "changed_on": pd.Timestamp("2026-11-04"),
                           "quantity_before": 3, "quantity_after": 2}])
    found = churn_risks(customers, subscriptions, invoices, movements, seats, AS_OF, EN)
    payment = "to update their payment method today, and check the failed charge's decline reason"
    assert found[["subject_id", "subject", "money_at_stake", "evidence", "action"]].values.tolist() == [
        ["cus_a", "Acme", 16014.0, "a failed payment, past due, cancellation requested; $1,334.50 MRR",
         f"Ask Acme {payment}"],
        ["cus_b", "cus_b", 600.0, "unpaid, downgraded; $50.00 MRR", f"Ask cus_b {payment}"],
        ["cus_d", "dora@x", 600.0, "cancellation requested; $50.00 MRR",
         "Call dora@x before the period ends: ask why they are leaving and offer a fix, a pause or a smaller plan"],
        ["cus_g", "Gus", 84.0, "cancellation requested; $7.00 MRR",
         "Call Gus before the period ends: ask why they are leaving and offer a fix, a pause or a smaller plan"],
        ["cus_c", "cus_c", 180.0, "fewer seats; $15.00 MRR",
         "Ask cus_c what made them cut back, and show them the features they stopped paying for"],
        ["cus_e", "Eve", 600.0, "downgraded; $50.00 MRR",
         "Ask Eve what made them cut back, and show them the features they stopped paying for"],
    ]
    assert churn_risks(customers, subscriptions, invoices.iloc[:0], movements.iloc[:0], seats.iloc[:0], AS_OF,
                       EN)["subject_id"].tolist() == ["cus_a", "cus_b", "cus_d"]  # cus_g: nothing paid, nothing lost


def test_segment_slips_keep_valuable_customers_who_lapsed_with_a_year_of_sales_at_stake():
    segments = pd.DataFrame([
        {"person_id": "p1", "email": "one@x", "segment": "at_risk", "previous_segment": "champions",
         "recency_days": 95, "frequency": 6},
        {"person_id": "p2", "email": "two@x", "segment": "hibernating", "previous_segment": "loyal",
         "recency_days": 200, "frequency": 3},
        {"person_id": "p3", "email": "three@x", "segment": "at_risk", "previous_segment": "promising",
         "recency_days": 90, "frequency": 2},  # never valuable
        {"person_id": "p4", "email": "four@x", "segment": "loyal", "previous_segment": "champions",
         "recency_days": 30, "frequency": 5},  # still valuable
        {"person_id": "p5", "email": "five@x", "segment": "at_risk", "previous_segment": "loyal",
         "recency_days": 400, "frequency": 4},  # nothing bought in the last year
    ])
    sales = pd.DataFrame({"person_id": ["p1", "p2", "p3", "p4"], "net_sales_365d": [640.0, 90.5, 50.0, 300.0]})
    found = segment_slips(segments, sales, EN).set_index("subject_id")
    assert list(found.index) == ["p1", "p2"]
    assert found["money_at_stake"].tolist() == [640.0, 90.5]
    assert found.loc["p1", "evidence"] == ("fell from champions to at risk: 6 orders, none in 95 days, "
                                           "$640.00 in the last year")


def weekly_sales(shares: dict[str, list[float]], totals: list[float]) -> pd.DataFrame:
    weeks = pd.date_range("2026-08-03", periods=len(totals), freq="7D")
    return pd.DataFrame([{"week_start": week, "product": product, "net_sales": share[i] * totals[i]}
                         for product, share in shares.items() for i, week in enumerate(weeks)])


def test_product_trend_breaks_are_share_changes_beyond_three_standard_errors():
    totals = [1000.0] * 12 + [2000.0] * 4  # the whole shop doubles: a season, no product's break
    steady = [0.50, 0.52, 0.48, 0.50] * 3 + [0.52] * 4
    rising = [0.10, 0.11, 0.09, 0.10] * 3 + [0.20] * 4
    falling = [0.40, 0.37, 0.43, 0.40] * 3 + [0.28] * 4
    found = product_trends(weekly_sales({"Steady": steady, "Rising": rising, "Falling": falling}, totals), EN)
    found = found.set_index("subject_id")
    assert sorted(found.index) == ["Falling", "Rising"]
    # Rising: share 0.10 → 0.20 of 2,000 a week: +200 a week, × 52
    assert found.loc["Rising", "money_at_stake"] == pytest.approx(10_400.0)
    assert found.loc["Rising", "direction"] == "opportunity"
    # Falling: 0.40 → 0.28: −240 a week
    assert found.loc["Falling", "money_at_stake"] == pytest.approx(12_480.0)
    assert found.loc["Falling", "direction"] == "risk"
    assert found.loc["Rising", "evidence"] == ("20.0% of net sales in the last 4 weeks against 10.0% in the 12 "
                                               "before (+$200.00 a week)")
    assert "stays in stock" in found.loc["Rising", "action"]
    assert "stock, price, page and recent reviews" in found.loc["Falling", "action"]
    # too few weeks: nothing
    assert product_trends(weekly_sales({"Rising": rising[:10]}, totals[:10]), EN).empty


def test_cohorts_far_from_the_usual_retention_at_their_age():
    rows = []
    for month, rate in [("2026-01-01", 0.10), ("2026-02-01", 0.11), ("2026-03-01", 0.09), ("2026-04-01", 0.10),
                        ("2026-05-01", 0.20)]:
        rows.append({"cohort_month": month, "months_since_first_order": 1, "cohort_customers": 400,
                     "active_customers": 400 * rate, "retention_rate": rate, "net_sales": 400 * rate * 50.0})
    found = cohort_retention(pd.DataFrame(rows), "ecommerce", EN)
    assert list(found["subject_id"]) == ["2026-05"]
    # usual = median of the others, 0.10 (binomial error √(0.1·0.9/400) = 0.015): 0.20 is 6.7 errors off;
    # (0.20 − 0.10) × 400 customers × $50 a month per active customer × 12
    assert found["money_at_stake"].iloc[0] == pytest.approx(24_000.0)
    assert found["direction"].iloc[0] == "opportunity"
    assert found["subject"].iloc[0] == "the 2026-05 cohort"

    saas = pd.DataFrame([{"cohort_month": month, "months_since_start": 3, "cohort_customers": 20,
                          "starting_mrr": 1000.0, "net_revenue_retention": nrr}
                         for month, nrr in [("2026-01-01", 1.00), ("2026-02-01", 1.02), ("2026-03-01", 0.98),
                                            ("2026-04-01", 0.70)]])
    found = cohort_retention(saas, "saas", EN)
    # usual 1.00, robust deviation 1.4826 × 0.02; (0.70 − 1.00) × $1,000 × 12
    assert list(found["subject_id"]) == ["2026-04"]
    assert found["money_at_stake"].iloc[0] == pytest.approx(3_600.0)
    assert found["direction"].iloc[0] == "risk"


def test_rank_orders_by_money_at_stake_and_keys_are_stable():
    customers, subscriptions, invoices, movements, seats = saas_tables()
    items = rank([churn_risks(customers, subscriptions, invoices, movements, seats, AS_OF, EN)], "w", AS_OF, "USD")
    assert items["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert items["money_at_stake"].is_monotonic_decreasing
    assert items["opportunity_id"].tolist()[:2] == ["w:churn_risk:cus_year", "w:churn_risk:cus_bye"]
    assert rank([], "w", None, "USD").empty


def test_words_follow_the_workspace_language():
    found = churn_risks(*saas_tables(), AS_OF, Wording("pt_BR", "BRL")).set_index("subject_id")
    assert found.loc["cus_pay", "evidence"] == "um pagamento recusado; R$\xa0100,00 de MRR"
    assert found.loc["cus_pay", "action"].startswith("Peça hoje a Pay Ltd")


def test_a_workspace_without_data_has_no_opportunities():
    assert workspace_opportunities(None, "w", "saas", "USD", EN, None).empty


def test_churn_risks_with_an_unknown_amount_keep_the_customer_with_an_unknown_stake_ranked_last():
    """docs/metrics.md, "A missing rate": an MRR or a movement converted without a rate is null. A
    customer showing a churn signal then has an unknown stake, never one computed with 0 for the
    unknown part (which would understate it, or drop the customer when nothing else was known):
      cus_rate: failed payment, MRR now unknown → unknown;
      cus_gone: cancellation requested, MRR now 0, the request's churn unknown → unknown;
      cus_down: downgraded twice in the window, one contraction unknown → unknown;
      cus_pay: failed payment, 100.00 now → 1,200.00, ranked first."""
    customers = pd.DataFrame([
        {"customer_id": "cus_rate", "customer_name": "Rate Co", "email": "r@x", "current_mrr": None},
        {"customer_id": "cus_gone", "customer_name": "Gone Co", "email": "g@x", "current_mrr": 0.0},
        {"customer_id": "cus_down", "customer_name": "Down Co", "email": "d@x", "current_mrr": 30.0},
        {"customer_id": "cus_pay", "customer_name": "Pay Co", "email": "p@x", "current_mrr": 100.0},
    ])
    live = {"status": "active", "cancel_at_period_end": False, "cancel_at": None, "ended_at": None}
    subscriptions = pd.DataFrame([
        {"customer_id": "cus_gone", **live, "cancel_at_period_end": True},
        {"customer_id": "cus_pay", **live},
    ])
    failed = {"status": "open", "amount_remaining": 10.0, "created_at": pd.Timestamp("2026-11-20")}
    invoices = pd.DataFrame([{"customer_id": "cus_rate", **failed}, {"customer_id": "cus_pay", **failed}])
    movements = pd.DataFrame([
        {"customer_id": "cus_gone", "change_date": date(2026, 9, 1), "movement_type": "churn", "delta": None},
        {"customer_id": "cus_down", "change_date": date(2026, 11, 3), "movement_type": "contraction", "delta": -5.0},
        {"customer_id": "cus_down", "change_date": date(2026, 11, 9), "movement_type": "contraction", "delta": None},
    ])
    seats = pd.DataFrame(columns=["customer_id", "changed_on", "quantity_before", "quantity_after"])
    found = rank([churn_risks(customers, subscriptions, invoices, movements, seats, AS_OF, EN)],
                 "w", AS_OF, "USD")
    assert found["subject_id"].tolist()[0] == "cus_pay" and found["money_at_stake"].tolist()[0] == 1200.0
    unknown = found.iloc[1:].set_index("subject_id")
    assert sorted(unknown.index) == ["cus_down", "cus_gone", "cus_rate"]
    assert unknown["money_at_stake"].isna().all()
    assert unknown.loc["cus_rate", "evidence"] == "a failed payment; n/a MRR"
