{#- A shop's customer base by day (docs/metrics.md, "Customer metrics"): customers and repeat
    customers to date, the repeat purchase rate and net sales per customer to date (the shop's
    historical LTV), one row per day of ecommerce_daily_metrics. Levels are running sums of change
    points (each person's first and second purchase day), never a row per customer per day. A
    workspace missing an exchange rate has no days there, so none here (has_fx_rates). -#}
with days as (
    select workspace_id, date, net_sales from {{ ref('ecommerce_daily_metrics') }}
),

-- purchases counted by day, as in the cohorts: two orders on one day are one purchase
purchase_days as (
    select distinct workspace_id, person_id, order_date
    from {{ ref('orders') }}
    where not is_cancelled and person_id is not null
),

numbered as (
    select
        workspace_id,
        order_date,
        row_number() over (partition by workspace_id, person_id order by order_date) as purchase_number
    from purchase_days
),

changes as (
    select
        workspace_id,
        order_date as date,
        sum(case when purchase_number = 1 then 1 else 0 end) as first_purchases,
        sum(case when purchase_number = 2 then 1 else 0 end) as second_purchases
    from numbered
    where purchase_number <= 2
    group by workspace_id, order_date
),

running as (
    select
        days.workspace_id,
        days.date,
        sum(coalesce(changes.first_purchases, 0)) over to_date as customers_to_date,
        sum(coalesce(changes.second_purchases, 0)) over to_date as repeat_customers_to_date,
        sum(days.net_sales) over to_date as net_sales_to_date
    from days
    left join changes on changes.workspace_id = days.workspace_id and changes.date = days.date
    window to_date as (partition by days.workspace_id order by days.date rows between unbounded preceding and current row)
),

final as (
    select
        workspace_id,
        date,
        cast(customers_to_date as bigint) as customers_to_date,
        cast(repeat_customers_to_date as bigint) as repeat_customers_to_date,
        {{ metric_ratio('repeat_purchase_rate', 9) }} as repeat_purchase_rate,
        cast(net_sales_to_date as decimal(38, 4)) as net_sales_to_date,
        {{ metric_ratio('net_sales_per_customer', 4) }} as net_sales_per_customer
    from running
)

select * from final
