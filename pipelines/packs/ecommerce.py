"""The ecommerce pack: a Shopify store's daily sales, orders and customers (ecommerce_daily_metrics),
split by product, country and customer type (ecommerce_daily_slices), and its customer base to date
(ecommerce_customer_metrics: repeat purchase rate, historical LTV); its customers and net sales by RFM
segment (ecommerce_segment_metrics, split by segment) and its cohorts' month-N retention
(ecommerce_cohort_metrics), and its net sales and orders forecast (forecast_metrics); these are not
watched by the anomaly scan or the report."""

from pipelines.packs.pack import COHORT_MONTHS, Dimension, Metric, Pack, Pair

BURSTY_CHANGE = 1.0  # week over week, lumpy amounts are news only when they double (or vanish)

# Line-level amounts split by product; order-level counts do not (one order holds several products).
BY_LINE = ("product", "country", "customer_type")
BY_ORDER = ("country", "customer_type")
SLICES = "ecommerce_daily_slices"
PAIR_SLICES = "ecommerce_daily_pair_slices"  # two dimensions at once: ecommerce_daily_pair_slices.sql
LINE_PAIRS = (("product", "country"), ("product", "customer_type"), ("country", "customer_type"))
ORDER_PAIRS = (("country", "customer_type"),)
CUSTOMERS = {"table": "ecommerce_customer_metrics", "stock": True}  # levels at the day's end, not split
# RFM segments, one row per week dated on its snapshot day (its Sunday, or the last data day).
SEGMENTS = {"table": "ecommerce_segment_metrics", "dimensions": ("segment",), "watched": False}
# Cohort retention, one row per cohort dated on its first-order month's first day (docs/metrics.md).
COHORTS = {"table": "ecommerce_cohort_metrics", "watched": False}
# Forecasts of the coming days (insights.forecasts through the view forecast_metrics; docs/metrics.md).
FORECASTS = {"table": "forecast_metrics", "watched": False}


def _cohort_metrics(month: int) -> tuple[Metric, ...]:
    """Month-N customer and revenue retention of the cohorts whose month N is complete, and their parts."""
    def cohort(name: str, label: str, unit: str, **fields) -> Metric:
        return Metric(f"{name}_m{month}", label, unit, **COHORTS, **fields)
    return (
        cohort("customer_retention", f"Month-{month} customer retention", "ratio",
               ratio=(f"retained_customers_m{month}", f"cohort_customers_m{month}"),
               synonyms=(f"month {month} retention", f"month {month} customer retention", f"{month}-month retention",
                         f"{month} month retention", f"retention at month {month}", f"month-{month} retention")),
        cohort("retained_customers", f"Cohort customers buying in month {month}", "count"),
        cohort("cohort_customers", f"Cohort customers reaching month {month}", "count"),
        cohort("revenue_retention", f"Month-{month} revenue retention", "ratio",
               ratio=(f"cohort_net_sales_m{month}", f"first_month_net_sales_m{month}"),
               synonyms=(f"month {month} revenue retention", f"{month}-month revenue retention",
                         f"{month} month revenue retention", f"revenue retention at month {month}",
                         f"month-{month} revenue retention")),
        cohort("cohort_net_sales", f"Cohorts' net sales in month {month}", "currency", can_be_negative=True),
        cohort("first_month_net_sales", f"Cohorts' first-month net sales (month {month} reached)", "currency",
               can_be_negative=True),
    )


PACK = Pack(
    vertical="ecommerce",
    table="ecommerce_daily_metrics",
    dimensions=(
        Dimension("product", "product", SLICES, synonyms=("products", "item", "items", "sku", "skus")),
        Dimension("country", "country", SLICES, synonyms=("countries", "shipping country", "market", "markets")),
        Dimension("customer_type", "customer type", SLICES,
                  synonyms=("customer types", "new vs returning", "new and returning", "new or returning")),
        Dimension("segment", "RFM segment", "ecommerce_segment_slices",
                  synonyms=("segments", "rfm segment", "rfm segments", "customer segment", "customer segments")),
    ),
    pairs=tuple(Pair(pair, PAIR_SLICES) for pair in LINE_PAIRS),
    metrics=(
        Metric("net_sales", "Net sales", "currency", can_be_negative=True, dimensions=BY_LINE, pairs=LINE_PAIRS,
               synonyms=("revenue", "sales", "net revenue", "turnover", "income", "money made")),
        Metric("gross_sales", "Gross sales", "currency", dimensions=BY_LINE, pairs=LINE_PAIRS,
               synonyms=("gross revenue", "gmv", "sales before discounts")),
        Metric("discounts", "Discounts", "currency", up_is_good=False, change_threshold=BURSTY_CHANGE,
               dimensions=BY_LINE, pairs=LINE_PAIRS, synonyms=("discount", "coupons", "promotions", "markdowns")),
        # Refunds come in lumps on the refund's own day: a wider band keeps one big refund quiet.
        Metric("refunds", "Refunds", "currency", up_is_good=False, sensitivity=4.5,
               change_threshold=BURSTY_CHANGE, dimensions=BY_LINE, pairs=LINE_PAIRS, synonyms=("refund", "returns", "refunded")),
        Metric("orders", "Orders", "count", dimensions=BY_ORDER, pairs=ORDER_PAIRS,
               synonyms=("order", "order count", "number of orders", "purchases", "transactions")),
        Metric("units", "Units sold", "count", dimensions=BY_LINE, pairs=LINE_PAIRS, unit_value=("net_sales", "units"),
               synonyms=("units", "items sold", "quantity", "quantity sold", "pieces sold")),
        # docs/metrics.md: AOV is sales after discounts per order.
        Metric("aov", "Average order value", "currency", dimensions=BY_ORDER, pairs=ORDER_PAIRS,
               ratio=("gross_sales - discounts", "orders"),
               synonyms=("average order value", "average order", "basket size", "average basket", "order value",
                         "average order size")),
        Metric("new_customers", "New customers", "count", dimensions=("country",),
               synonyms=("new customer", "first-time customers", "first time buyers", "new buyers",
                         "customers", "buyers")),
        Metric("returning_customers", "Returning customers", "count", dimensions=("country",),
               synonyms=("returning customer", "repeat customers", "repeat buyers", "customers", "buyers")),
        # Their words are those of the daily metrics: a question split by segment means these (docs/ask.md).
        Metric("segment_customers", "Customers by RFM segment", "count", stock=True, **SEGMENTS,
               synonyms=("customers", "segment size", "segment sizes", "rfm customers", "segment customers")),
        Metric("segment_net_sales", "Net sales by RFM segment", "currency", can_be_negative=True, **SEGMENTS,
               synonyms=("net sales", "sales", "revenue", "segment net sales", "segment revenue", "segment sales")),
        Metric("customers_to_date", "Customers to date", "count", **CUSTOMERS,
               synonyms=("total customers", "customer base", "all customers", "customers so far")),
        Metric("repeat_customers_to_date", "Repeat customers to date", "count", **CUSTOMERS,
               synonyms=("customers who came back", "customers who bought again")),
        Metric("repeat_purchase_rate", "Repeat purchase rate", "ratio", **CUSTOMERS,
               ratio=("repeat_customers_to_date", "customers_to_date"),
               synonyms=("repeat rate", "repurchase rate", "repeat customer rate", "returning customer rate")),
        Metric("net_sales_to_date", "Net sales to date", "currency", **CUSTOMERS,
               synonyms=("lifetime net sales", "all-time net sales", "total net sales")),
        Metric("net_sales_per_customer", "Net sales per customer (historical LTV)", "currency", **CUSTOMERS,
               ratio=("net_sales_to_date", "customers_to_date"),
               synonyms=("ltv", "lifetime value", "customer lifetime value", "clv", "cltv", "historical ltv",
                         "revenue per customer", "sales per customer")),
        Metric("cohort_customers", "Customers acquired (cohort size)", "count", **COHORTS,
               synonyms=("cohort size", "cohort sizes", "customers acquired", "acquired customers")),
        *(metric for month in COHORT_MONTHS for metric in _cohort_metrics(month)),
        Metric("net_sales_forecast", "Net sales forecast", "currency", can_be_negative=True, forecast_of="net_sales",
               **FORECASTS, synonyms=("sales forecast", "revenue forecast", "projected net sales", "projected sales",
                                      "projected revenue", "expected net sales", "expected sales", "expected revenue")),
        Metric("orders_forecast", "Orders forecast", "count", forecast_of="orders", **FORECASTS,
               synonyms=("order forecast", "projected orders", "expected orders")),
    ),
)
