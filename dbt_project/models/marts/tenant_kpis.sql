{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['day', 'tenant_id'],
    on_schema_change='append_new_columns',
    tags=['daily'],
) }}
-- Tenant KPIs per day for dashboards: the day's orders and revenue, trailing_revenue 7 and 30-day
-- revenue, MRR and the funnel's purchase conversion, for every tenant. Daily-partitioned:
-- a run builds the days min_date <= day < max_date (dbt vars: the Dagster partition window)
-- and replaces exactly those days.
with revenue as (
    select "day", "tenant_id", "orders", "paid_orders", "revenue", "new_customers"
    from {{ source('gold', 'daily_revenue') }}
),
mrr as (
    select "day", "tenant_id", "mrr", "active_subscriptions"
    from {{ source('gold', 'mrr') }}
    where "day" >= {{ date_var('min_date') }} and "day" < {{ date_var('max_date') }}
),
funnel as (
    select
        "day",
        "tenant_id",
        max("users") filter (where "step_number" = 1) as "visitors",
        max("conversion_from_first") filter (where "step_number" = 5) as "purchase_conversion"
    from {{ source('gold', 'event_funnel') }}
    where "day" >= {{ date_var('min_date') }} and "day" < {{ date_var('max_date') }}
    group by "day", "tenant_id"
),
days as (
    select "day" from revenue where "day" >= {{ date_var('min_date') }} and "day" < {{ date_var('max_date') }}
    union
    select "day" from mrr
    union
    select "day" from funnel
),
spine as (
    select d."day", t."tenant_id", t."name" as "tenant_name"
    from days as d
    cross join {{ source('gold', 'tenants') }} as t
),
trailing_revenue as (
    select
        s."day",
        s."tenant_id",
        coalesce(sum(r."revenue") filter (where r."day" > s."day" - 7), 0) as "revenue_7d",
        coalesce(sum(r."revenue"), 0) as "revenue_30d"
    from spine as s
    left join revenue as r
        on r."tenant_id" = s."tenant_id" and r."day" > s."day" - 30 and r."day" <= s."day"
    group by s."day", s."tenant_id"
)
select
    s."day",
    s."tenant_id",
    s."tenant_name",
    coalesce(r."orders", 0) as "orders",
    coalesce(r."paid_orders", 0) as "paid_orders",
    coalesce(r."revenue", 0) as "revenue",
    t."revenue_7d",
    t."revenue_30d",
    coalesce(r."new_customers", 0) as "new_customers",
    coalesce(m."mrr", 0) as "mrr",
    coalesce(m."active_subscriptions", 0) as "active_subscriptions",
    coalesce(f."visitors", 0) as "visitors",
    f."purchase_conversion"
from spine as s
join trailing_revenue as t on t."day" = s."day" and t."tenant_id" = s."tenant_id"
left join revenue as r on r."day" = s."day" and r."tenant_id" = s."tenant_id"
left join mrr as m on m."day" = s."day" and m."tenant_id" = s."tenant_id"
left join funnel as f on f."day" = s."day" and f."tenant_id" = s."tenant_id"
