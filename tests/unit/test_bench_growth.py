"""The growth curve's fitted exponent (pipelines/bench/growth.py), on hand-worked points."""

import pytest

from pipelines.bench import report
from pipelines.bench.growth import exponent


def test_linear_growth_has_exponent_one():
    assert exponent([(1_000, 2.0), (10_000, 20.0), (100_000, 200.0)]) == 1.0


def test_square_root_growth_has_exponent_one_half():
    # 100× the rows, 10× the time: log(10) / log(100) = 0.5
    assert exponent([(1_000, 3.0), (100_000, 30.0)]) == 0.5


def test_least_squares_through_three_points():
    # log10 points (0, 0), (1, 1), (2, 3): slope = Σ(dx·dy) / Σdx² = (1·(4/3) + 1·(5/3)) / 2 = 1.5
    assert exponent([(1, 1), (10, 10), (100, 1000)]) == pytest.approx(1.5)


def test_one_size_has_no_exponent():
    assert exponent([(1_000, 2.0)]) is None
    assert exponent([(1_000, 2.0), (1_000, 3.0)]) is None


def test_the_exponent_is_judged_over_ten_times_the_rows_only():
    def growth(rows_small, rows_large):
        points = [{"full": {"rows": rows_small}}, {"full": {"rows": rows_large}}]
        return {"points": points, "exponents": {"full_total_vs_rows": 0.9}}

    assert report.growth_targets(growth(1_000, 5_000))["growth_exponent_full"]["met"] is None
    assert report.growth_targets(growth(1_000, 10_000))["growth_exponent_full"]["met"] is True
