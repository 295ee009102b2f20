"""Time phrases of questions, resolved by hand-worked dates (today: Thursday 2026-12-03)."""

from datetime import date

import pytest

from pipelines.ask.periods import PeriodError, default_period, find_period

TODAY = date(2026, 12, 3)


def period(text: str, today: date = TODAY):
    found = find_period(text, today, "US")
    assert found is not None, text
    return found[0]


@pytest.mark.parametrize("text, start, end, partial", [
    ("last 7 days", date(2026, 11, 26), date(2026, 12, 2), False),  # 7 complete days ending yesterday
    ("this month", date(2026, 12, 1), date(2026, 12, 3), True),  # to date, marked partial
    ("last week", date(2026, 11, 23), date(2026, 11, 29), False),  # Monday to Sunday
    ("mtd", date(2026, 12, 1), date(2026, 12, 3), True),
    ("q2 2026", date(2026, 4, 1), date(2026, 6, 30), False),
    ("week 1", date(2025, 12, 29), date(2026, 1, 4), False),  # ISO week 1 of 2026 starts in 2025
    ("in december", date(2026, 12, 1), date(2026, 12, 3), True),  # the current December, so far
    ("in january", date(2026, 1, 1), date(2026, 1, 31), False),
    ("last march", date(2026, 3, 1), date(2026, 3, 31), False),
    ("between feb 27 and march 2", date(2026, 2, 27), date(2026, 3, 2), False),
    ("on black friday", date(2026, 11, 27), date(2026, 11, 27), False),  # after US Thanksgiving, Nov 26
    ("on christmas", date(2025, 12, 25), date(2025, 12, 25), False),  # the last one that has happened
    ("last friday", date(2026, 11, 27), date(2026, 11, 27), False),
    ("last thursday", date(2026, 11, 26), date(2026, 11, 26), False),  # on a Thursday: a week ago
    ("last 2 months", date(2026, 10, 1), date(2026, 11, 30), False),
])
def test_phrases_mean_the_stated_days(text, start, end, partial):
    found = period(text)
    assert (found.start, found.end, found.partial) == (start, end, partial)


def test_no_phrase_means_the_last_7_complete_days():
    assert find_period("net sales", TODAY) is None
    assert (default_period(TODAY).start, default_period(TODAY).end) == (date(2026, 11, 26), date(2026, 12, 2))


def test_partial_periods_compare_with_as_many_days_before():
    month = period("this month")
    assert (month.previous().start, month.previous().end) == (date(2026, 11, 1), date(2026, 11, 3))
    assert (month.year_before().start, month.year_before().end) == (date(2025, 12, 1), date(2025, 12, 3))
    march = period("in march", date(2026, 3, 31))  # a 31-day month against a 28-day one: all of February
    assert (march.previous().start, march.previous().end) == (date(2026, 2, 1), date(2026, 2, 28))
    week = period("last week")  # a week a year before: 52 weeks, the same weekdays
    assert (week.year_before().start, week.year_before().end) == (date(2025, 11, 24), date(2025, 11, 30))
    days = period("last 7 days")
    assert (days.previous().start, days.previous().end) == (date(2026, 11, 19), date(2026, 11, 25))


@pytest.mark.parametrize("text", ["on february 30", "week 54 2026", "between march 5, 2026 and march 1, 2026",
                                  "in 2027"])
def test_impossible_or_future_periods_are_errors(text):
    with pytest.raises(PeriodError):
        find_period(text, TODAY, "US")


@pytest.mark.parametrize("text, start, end", [
    ("next 7 days", date(2026, 12, 4), date(2026, 12, 10)),  # the 7 days after today
    ("over the next 4 weeks", date(2026, 12, 7), date(2027, 1, 3)),  # 4 ISO weeks after this one (Nov 30-Dec 6)
    ("next week", date(2026, 12, 7), date(2026, 12, 13)),
    ("next month", date(2027, 1, 1), date(2027, 1, 31)),
    ("the coming 2 months", date(2027, 1, 1), date(2027, 2, 28)),
    ("next quarter", date(2027, 1, 1), date(2027, 3, 31)),
    ("tomorrow", date(2026, 12, 4), date(2026, 12, 4)),
])
def test_days_to_come_are_named_as_such(text, start, end):
    found = period(text)
    assert (found.start, found.end, found.partial, found.ahead) == (start, end, False, True)


def test_a_partial_period_as_a_whole_runs_to_its_last_day():
    assert (period("this month").whole().start, period("this month").whole().end) == (date(2026, 12, 1),
                                                                                     date(2026, 12, 31))
    assert period("this week").whole().end == date(2026, 12, 6)  # Sunday
    assert period("last month").whole() == period("last month")  # complete: as it is
