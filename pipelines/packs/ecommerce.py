"""The ecommerce pack: a Shopify store's daily sales, orders and customers (ecommerce_daily_metrics),
split by product, country and customer type (ecommerce_daily_slices), and its customer base to date
(ecommerce_customer_metrics: repeat purchase rate, historical LTV)."""

from pipelines.packs.pack import Dimension, Metric, Pack

BURSTY_CHANGE = 1.0  # week over week, lumpy amounts are news only when they double (or vanish)

# Line-level amounts split by product; order-level counts do not (one order holds several products).
BY_LINE = ("product", "country", "customer_type")
BY_ORDER = ("country", "customer_type")
SLICES = "ecommerce_daily_slices"
CUSTOMERS = {"table": "ecommerce_customer_metrics", "stock": True}  # levels at the day's end, not split

PACK = Pack(
    vertical="ecommerce",
    table="ecommerce_daily_metrics",
    dimensions=(
        Dimension("product", "product", SLICES, synonyms=("products", "item", "items", "sku", "skus")),
        Dimension("country", "country", SLICES, synonyms=("countries", "shipping country", "market", "markets")),
        Dimension("customer_type", "customer type", SLICES,
                  synonyms=("customer types", "new vs returning", "new and returning", "new or returning")),
    ),
    metrics=(
        Metric("net_sales", "Net sales", "currency", can_be_negative=True, dimensions=BY_LINE,
               synonyms=("revenue", "sales", "net revenue", "turnover", "income", "money made")),
        Metric("gross_sales", "Gross sales", "currency", dimensions=BY_LINE,
               synonyms=("gross revenue", "gmv", "sales before discounts")),
        Metric("discounts", "Discounts", "currency", up_is_good=False, change_threshold=BURSTY_CHANGE,
               dimensions=BY_LINE, synonyms=("discount", "coupons", "promotions", "markdowns")),
        # Refunds come in lumps on the refund's own day: a wider band keeps one big refund quiet.
        Metric("refunds", "Refunds", "currency", up_is_good=False, sensitivity=4.5,
               change_threshold=BURSTY_CHANGE, dimensions=BY_LINE, synonyms=("refund", "returns", "refunded")),
        Metric("orders", "Orders", "count", dimensions=BY_ORDER,
               synonyms=("order", "order count", "number of orders", "purchases", "transactions")),
        Metric("units", "Units sold", "count", dimensions=BY_LINE, unit_value=("net_sales", "units"),
               synonyms=("units", "items sold", "quantity", "quantity sold", "pieces sold")),
        # docs/metrics.md: AOV is sales after discounts per order.
        Metric("aov", "Average order value", "currency", dimensions=BY_ORDER,
               ratio=("gross_sales - discounts", "orders"),
               synonyms=("average order value", "average order", "basket size", "average basket", "order value",
                         "average order size")),
        Metric("new_customers", "New customers", "count", dimensions=("country",),
               synonyms=("new customer", "first-time customers", "first time buyers", "new buyers",
                         "customers", "buyers")),
        Metric("returning_customers", "Returning customers", "count", dimensions=("country",),
               synonyms=("returning customer", "repeat customers", "repeat buyers", "customers", "buyers")),
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
    ),
)
