"""Predicted customer value: BG/NBD for how often a customer buys, Gamma-Gamma for how much.

The models of Fader, Hardie and Lee ("Counting your customers the easy way", 2005; "RFM and CLV",
2005), fitted by maximum likelihood with scipy. Why not a library: `lifetimes` has had no release
since 2020, and pymc-marketing brings PyMC and PyTensor (a heavy import and compile step) for what
are two closed-form likelihoods; see docs/metrics.md, "Predicted LTV".

Inputs per customer, in days: `frequency` = repeat purchases (sold orders after the first),
`recency` = days from the first to the last purchase, `age` = days from the first purchase to the
as-of day; `monetary` = mean net sales of the repeat orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import optimize, special

from pipelines.insights.fits import Fit

FIT_NAME = "customer_values"  # the models' parameters in `insights.model_fits`


@dataclass(frozen=True)
class PurchaseModel:
    """Fitted BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def expected_purchases(self, days: float, frequency, recency, age) -> np.ndarray:
        """Expected purchases in the next `days` of customers with this history."""
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyper = special.hyp2f1(r + x, b + x, a + b + x - 1, days / (alpha + big_t + days))
        grow = (a + b + x - 1) / (a - 1) * (1 - ((alpha + big_t) / (alpha + big_t + days)) ** (r + x) * hyper)
        alive_odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + big_t) / (alpha + t_x)) ** (r + x), 0)
        return grow / (1 + alive_odds)

    def probability_alive(self, frequency, recency, age) -> np.ndarray:
        """Chance that a customer with this history has not dropped out (1 for a one-purchase customer)."""
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + big_t) / (alpha + t_x)) ** (r + x), 0)
        return 1 / (1 + odds)


@dataclass(frozen=True)
class SpendModel:
    """Fitted Gamma-Gamma parameters for the mean order value of repeat customers."""

    p: float
    q: float
    v: float

    def expected_order_value(self, frequency, monetary) -> np.ndarray:
        """Expected net sales per future order; the population mean for one-order customers."""
        x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
        population = self.p * self.v / (self.q - 1)
        weight = self.p * x / (self.p * x + self.q - 1)
        return np.where(x > 0, (1 - weight) * population + weight * np.nan_to_num(m), population)


@dataclass(frozen=True)
class _Histories:
    """Customers' (frequency x, recency, age) arranged so that the likelihood computes each piece once.

    The log-likelihood is a sum of one term per customer, and customers with the same history give the
    same term, so it sums each distinct history once, times its count. Within that, the Gamma-function
    terms of x are computed once per distinct x, and log(alpha + days) once per distinct day; the
    one-purchase customers' terms (x = 0: only the age matters) sum per day of age."""

    xs: np.ndarray  # the distinct frequencies
    customers_by_x: np.ndarray  # customers with each
    days: np.ndarray  # the distinct recencies and ages, in the fit's unit of time
    once_by_day: np.ndarray  # one-purchase customers by age (a day of `days`)
    x_at: np.ndarray  # the distinct histories of repeat customers: their x (index into xs),
    recency_at: np.ndarray  # recency and age (indexes into days),
    age_at: np.ndarray
    count: np.ndarray  # and how many customers have each

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, unit: float = 1.0) -> _Histories:
        (x, t_x, big_t), count = distinct(x, t_x, big_t)
        xs, x_at = np.unique(x, return_inverse=True)
        days, day_at = np.unique(np.concatenate([t_x, big_t]), return_inverse=True)
        recency_at, age_at = day_at[:len(x)], day_at[len(x):]
        once = x == 0
        return cls(xs=xs, customers_by_x=np.bincount(x_at, count, len(xs)), days=days / unit,
                   once_by_day=np.bincount(age_at[once], count[once], len(days)), x_at=x_at[~once],
                   recency_at=recency_at[~once], age_at=age_at[~once], count=count[~once])


def _purchase_log_likelihood(params: np.ndarray, histories: _Histories) -> float:
    """BG/NBD's negative log-likelihood (Fader, Hardie and Lee 2005, eq. 6, on the log scale)."""
    r, alpha, a, b = np.exp(params)  # fitted on the log scale: every parameter is positive
    h = histories
    by_x = (special.gammaln(r + h.xs) - special.gammaln(r) + r * np.log(alpha) + special.gammaln(a + b)
            + special.gammaln(b + h.xs) - special.gammaln(b) - special.gammaln(a + b + h.xs))
    log_days = np.log(alpha + h.days)
    once = -r * np.sum(h.once_by_day * log_days)  # x = 0: the customer is alive or left at once
    power = (r + h.xs)[h.x_at]
    with np.errstate(divide="ignore"):
        left = (np.log(a) - np.log(np.maximum(b + h.xs - 1, 1e-12)))[h.x_at] - power * log_days[h.recency_at]
    repeat = np.sum(h.count * np.logaddexp(-power * log_days[h.age_at], left))
    return -float(np.sum(h.customers_by_x * by_x) + once + repeat)


def fit_purchases(frequency, recency, age, start: PurchaseModel | None = None) -> PurchaseModel:
    """Fit BG/NBD to customers' repeat purchases, recency and age (days); from `start` (an earlier
    fit's parameters) rather than the default start when given."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
    # Time in units of the mean age, so one start and one box suit hours-old shops and decade-old ones;
    # the box keeps a flat likelihood (too few repeat buyers) from sending a, b off to 1e15.
    scale = float(np.mean(big_t)) or 1.0
    found = _fit(_purchase_log_likelihood, 4, (_Histories.of(x, t_x, big_t, scale),),
                 None if start is None else np.log([start.r, start.alpha / scale, start.a, start.b]))
    r, alpha, a, b = np.exp(found)
    return PurchaseModel(r, alpha * scale, a, b)


def _spend_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray, count: np.ndarray) -> float:
    p, q, v = np.exp(params)
    ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(v)
          + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v))
    return -float(np.sum(count * ll))


def fit_spend(frequency, monetary, start: SpendModel | None = None) -> SpendModel:
    """Fit Gamma-Gamma to repeat customers' number of repeat orders and mean order value (> 0); from
    `start` (an earlier fit's parameters) when given."""
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
    keep = (x > 0) & (m > 0)
    scale = float(np.mean(m[keep])) if keep.any() else 1.0  # money in units of the mean order value
    (x, m), count = distinct(x[keep], m[keep])
    p, q, v = np.exp(_fit(_spend_log_likelihood, 3, (x, m / scale, count),
                          None if start is None else np.log([start.p, start.q, start.v / scale])))
    return SpendModel(p, q, v * scale)


def distinct(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The distinct rows of these columns, and how many times each occurs.

    Both likelihoods are sums of one term per customer, and customers with the same history give the
    same term: summing each distinct history once, times its count, is the same sum for a fraction of
    the work (most of a large shop's customers bought once, and share a few hundred histories)."""
    counted = pd.DataFrame(dict(enumerate(columns))).value_counts(sort=False, dropna=False)
    rows = tuple(counted.index.get_level_values(level).to_numpy(dtype=float) for level in range(len(columns)))
    return rows, counted.to_numpy(dtype=float)


LOG_BOUND = 10.0  # parameters between e^-10 and e^10 (in the scaled units)
TOLERANCE = 1e-10  # Nelder-Mead stops at steps this small relative to the likelihood at its start


def _fit(negative_log_likelihood, size: int, args: tuple, start: np.ndarray | None = None) -> np.ndarray:
    """Log-parameters maximizing a likelihood: Nelder-Mead for a robust start, then L-BFGS-B in the box.

    Nelder-Mead starts from `start` (an earlier optimum) or from all zeros, and stops when its steps
    are below TOLERANCE of the likelihood at that start; L-BFGS-B finishes from there. The tolerance is
    relative: an absolute one lies below the rounding noise of a large shop's likelihood (a sum over
    150,000 distinct histories at the large sandbox's US store), which it never reaches, so Nelder-Mead
    ran its 4,000 iterations (docs/performance.md, "The customer values' first fit of a large shop")."""
    begin = np.zeros(size) if start is None else np.clip(start, -LOG_BOUND, LOG_BOUND)
    fatol = TOLERANCE * abs(negative_log_likelihood(begin, *args))
    start = optimize.minimize(negative_log_likelihood, begin, args=args, method="Nelder-Mead",
                              bounds=[(-LOG_BOUND, LOG_BOUND)] * size,
                              options={"maxiter": 4000, "xatol": 1e-6, "fatol": fatol})
    found = optimize.minimize(negative_log_likelihood, start.x, args=args, method="L-BFGS-B",
                              bounds=[(-LOG_BOUND, LOG_BOUND)] * size)
    return found.x if found.fun <= start.fun else start.x


def purchase_histories(orders: pd.DataFrame, as_of) -> pd.DataFrame:
    """Per person (indexed by `person_id`, in its order), the model inputs from sold orders
    (person_id, order_date, net_sales) as of a day.

    Purchases are counted by day, as the models expect: two orders on one day are one purchase of
    their summed value, so a split basket does not look like a loyal customer.
    """
    # People as codes in their sorted order: grouping by a number, not a text, is what a shop's
    # million orders cost (docs/performance.md, "The insights after a change: what grows with the data").
    person, people = pd.factorize(orders["person_id"], sort=True, use_na_sentinel=True)
    days = pd.DataFrame({"person": person, "order_date": pd.to_datetime(orders["order_date"]),
                         "net_sales": orders["net_sales"].to_numpy()})[person >= 0]
    # each day's orders summed in their order, and the days by person and date
    days = days.groupby(["person", "order_date"], as_index=False)["net_sales"].sum()
    owner = days["person"].to_numpy()
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # each person's first day
    ends = np.r_[starts[1:], len(days)] - 1
    dates = days["order_date"].to_numpy()
    first, last = pd.DatetimeIndex(dates[starts]), pd.DatetimeIndex(dates[ends])
    repeat = np.ones(len(days), dtype=bool)
    repeat[starts] = False
    index = pd.Index(people[owner[starts]], name="person_id")
    monetary = days[repeat].groupby("person")["net_sales"].mean().reindex(owner[starts])
    return pd.DataFrame({
        "frequency": ends - starts,
        "recency": (last - first).days.to_numpy(dtype="int64"),
        "age": (pd.Timestamp(as_of) - first).days.to_numpy(dtype="int64"),
        "monetary": monetary.fillna(0.0).astype(float).to_numpy(),
    }, index=index)


def predict_value(customers: pd.DataFrame, days: int = 365) -> pd.DataFrame:
    """Fit both models to `customers` (frequency, recency, age, monetary) and add the expected
    purchases and net sales of the next `days` (12 months by default)."""
    purchases = fit_purchases(customers["frequency"], customers["recency"], customers["age"])
    spend = fit_spend(customers["frequency"], customers["monetary"])
    expected = purchases.expected_purchases(days, customers["frequency"], customers["recency"], customers["age"])
    value = expected * spend.expected_order_value(customers["frequency"], customers["monetary"])
    return customers.assign(expected_purchases=expected, predicted_value=value)


# Below these, a fit says more about the optimizer than about the customers: the table keeps their
# histories and leaves the predictions empty.
MIN_CUSTOMERS = 50
MIN_REPEAT_CUSTOMERS = 10
HORIZON_DAYS = 365
DAY = pd.ArrowDtype(pa.date32())  # the date columns' type
VALUE_COLUMNS = ["workspace_id", "person_id", "as_of", "first_order_date", "last_order_date", "frequency",
                 "recency_days", "age_days", "monetary", "probability_alive", "expected_purchases_12m",
                 "predicted_value_12m", "currency"]


def workspace_customer_values(query, workspace_id: str, currency: str, as_of: date | None,
                              horizon_days: int = HORIZON_DAYS, start: Fit | None = None) -> tuple[pd.DataFrame, dict]:
    """Every customer of one shop with their purchase history as of `as_of` (the last data day) and,
    when the shop has enough customers to fit, their predicted next 12 months (`horizon_days`: the
    backtests predict shorter spans, under the same column names).

    Args:
        query: `Warehouse.query` (SQL with %s parameters, returning a frame).
        workspace_id: the workspace.
        currency: its shop currency (marts.orders amounts).
        as_of: the last data day; None (no data) gives no rows.
        start: the shop's stored fit (`insights.model_fits`): while usable on `as_of`
            (`Fit.usable_on`), both models' optimizers start from its parameters instead of the
            default start, which costs a fraction of the steps (docs/metrics.md, "Predicted LTV").

    Returns:
        Rows with VALUE_COLUMNS, and the fitted parameters (empty when nothing was fitted, with the
        reason under "skipped"; under "fit", the `Fit` to store).
    """
    if as_of is None:
        return _values_frame(pd.DataFrame(columns=VALUE_COLUMNS)), {"skipped": "no data"}
    orders = query("select person_id, order_date, discounted_sales as net_sales from marts.orders "
                   "where workspace_id = %s and not is_cancelled and person_id is not null and order_date <= %s",
                   [workspace_id, as_of])
    if orders.empty:
        return _values_frame(pd.DataFrame(columns=VALUE_COLUMNS)), {"skipped": "no orders"}
    orders = orders.astype({"net_sales": "float64"})
    histories = purchase_histories(orders, as_of)
    # a person's first and last order days, from their age and recency on as_of
    first = pd.Timestamp(as_of) - pd.to_timedelta(histories["age"], unit="D")
    frame = histories.assign(first_order_date=first, last_order_date=first + pd.to_timedelta(histories["recency"], unit="D"))
    repeat = int((histories["frequency"] > 0).sum())
    params: dict = {}
    if len(histories) < MIN_CUSTOMERS or repeat < MIN_REPEAT_CUSTOMERS:
        params["skipped"] = (f"{len(histories)} customers, {repeat} with a repeat purchase: a fit needs "
                             f"{MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS}")
        frame = frame.assign(probability_alive=np.nan, expected_purchases=np.nan, predicted_value=np.nan)
    else:
        warm = start is not None and start.usable_on(as_of)
        purchases = fit_purchases(frame["frequency"], frame["recency"], frame["age"],
                                  PurchaseModel(*(start.params[name] for name in ["r", "alpha", "a", "b"])) if warm else None)
        spend = fit_spend(frame["frequency"], frame["monetary"],
                          SpendModel(*(start.params[name] for name in "pqv")) if warm else None)
        params = {"r": purchases.r, "alpha": purchases.alpha, "a": purchases.a, "b": purchases.b,
                  "p": spend.p, "q": spend.q, "v": spend.v}
        params["fit"] = Fit(start.estimated_on if warm else as_of, {name: float(value) for name, value in params.items()})
        expected = purchases.expected_purchases(horizon_days, frame["frequency"], frame["recency"], frame["age"])
        frame = frame.assign(
            probability_alive=purchases.probability_alive(frame["frequency"], frame["recency"], frame["age"]),
            expected_purchases=expected,
            predicted_value=expected * spend.expected_order_value(frame["frequency"], frame["monetary"]))
        if spend.q <= 1:  # the population's mean order value is infinite: no value to predict
            params["skipped"] = f"Gamma-Gamma q = {spend.q:.3f} <= 1"
            frame["predicted_value"] = np.nan
    frame = frame.rename_axis("person_id").reset_index().rename(columns={
        "recency": "recency_days", "age": "age_days", "expected_purchases": "expected_purchases_12m",
        "predicted_value": "predicted_value_12m"})
    frame = frame.assign(workspace_id=workspace_id, as_of=pd.Timestamp(as_of), currency=currency)
    return _values_frame(frame[VALUE_COLUMNS]), params


def _values_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable column types, whatever the rows (a shop without a fit writes empty predictions), the
    highest predicted value first, then by `person_id`: `frame` comes in `person_id` order, which a
    stable sort keeps among equal values (sorting by the text again costs more than the rest). Days
    are Arrow dates (`DAY`): a million customers' dates as Python objects cost a second to make, check
    and write."""
    return frame.astype({"workspace_id": "object", "person_id": "object", "as_of": DAY, "first_order_date": DAY,
                         "last_order_date": DAY, "frequency": "int64",
                         "recency_days": "int64", "age_days": "int64", "monetary": "float64",
                         "probability_alive": "float64", "expected_purchases_12m": "float64",
                         "predicted_value_12m": "float64", "currency": "object"}).sort_values(
        "predicted_value_12m", ascending=False, kind="stable", na_position="last", ignore_index=True)
