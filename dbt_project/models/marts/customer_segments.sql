-- Customer segments for CRM dashboards, from lifetime value and recency:
--   prospect         no paid order and no paid invoice yet
--   subscriber_only  pays invoices, never a paid order
--   at_risk          last paid order more than 90 days before the newest one in the data
--   champion         top value decile of the tenant
--   loyal            3 or more paid orders
--   occasional       the rest
with clv as (
    select * from {{ source('gold', 'customer_lifetime_value') }}
),
as_of as (
    select max("last_order_at") as "as_of" from clv
),
ranked as (
    select
        clv.*,
        ntile(10) over (partition by "tenant_id" order by "lifetime_value", "customer_id") as "value_decile"
    from clv
)
select
    r."customer_id",
    r."tenant_id",
    t."name" as "tenant_name",
    r."customer_since",
    r."paid_orders",
    r."order_revenue",
    r."invoice_revenue",
    r."lifetime_value",
    r."last_order_at",
    r."value_decile",
    case
        when r."paid_orders" = 0 and r."invoice_revenue" = 0 then 'prospect'
        when r."paid_orders" = 0 then 'subscriber_only'
        when r."last_order_at" < a."as_of" - interval '90 days' then 'at_risk'
        when r."value_decile" = 10 then 'champion'
        when r."paid_orders" >= 3 then 'loyal'
        else 'occasional'
    end as "segment"
from ranked as r
cross join as_of as a
left join {{ source('gold', 'tenants') }} as t on t."tenant_id" = r."tenant_id"
