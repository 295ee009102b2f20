"""The ecommerce pack: a Shopify store's daily sales, orders and customers (ecommerce_daily_metrics)."""

from pipelines.packs import Dimension, Metric, Pack

BURSTY_CHANGE = 1.0  # week over week, lumpy amounts are news only when they double (or vanish)

# Line-level amounts split by product; order-level counts do not (one order holds several products).
BY_LINE = ("product", "country", "customer_type")
BY_ORDER = ("country", "customer_type")

PACK = Pack(
    vertical="ecommerce",
    table="ecommerce_daily_metrics",
    dimensions=(
        Dimension("product", "product"),
        Dimension("country", "country"),
        Dimension("customer_type", "customer type"),
    ),
    metrics=(
        Metric("net_sales", "Net sales", "currency", can_be_negative=True, dimensions=BY_LINE),
        Metric("gross_sales", "Gross sales", "currency", dimensions=BY_LINE),
        Metric("discounts", "Discounts", "currency", up_is_good=False, change_threshold=BURSTY_CHANGE,
               dimensions=BY_LINE),
        # Refunds come in lumps on the refund's own day: a wider band keeps one big refund quiet.
        Metric("refunds", "Refunds", "currency", up_is_good=False, sensitivity=4.5,
               change_threshold=BURSTY_CHANGE, dimensions=BY_LINE),
        Metric("orders", "Orders", "count", dimensions=BY_ORDER),
        Metric("units", "Units sold", "count", dimensions=BY_LINE, unit_value=("net_sales", "units")),
        # docs/metrics.md: AOV is sales after discounts per order.
        Metric("aov", "Average order value", "currency", dimensions=BY_ORDER,
               ratio=("gross_sales - discounts", "orders")),
        Metric("new_customers", "New customers", "count", dimensions=("country",)),
        Metric("returning_customers", "Returning customers", "count", dimensions=("country",)),
    ),
)
