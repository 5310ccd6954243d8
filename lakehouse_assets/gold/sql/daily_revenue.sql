-- Daily revenue per tenant: one row per (day, tenant) with an order or a new customer.
-- An order counts on the day it was created (UTC). Paid orders are paid, shipped or
-- delivered (not pending, cancelled or refunded); revenue and items sold count paid
-- orders only. Inputs: orders and customers created in the window, the items of
-- those orders. Parameters: $window_start, $window_end (dates, end exclusive).
WITH window_orders AS (
    SELECT
        CAST(o."created_at" AS DATE) AS "day",
        o."tenant_id",
        o."id",
        o."total",
        o."currency",
        o."status" IN ('paid', 'shipped', 'delivered') AS "is_paid"
    FROM "orders" AS o
    WHERE o."created_at" >= $window_start AND o."created_at" < $window_end
),
order_units AS (
    SELECT i."order_id", SUM(i."quantity") AS "units"
    FROM "order_items" AS i
    GROUP BY i."order_id"
),
order_days AS (
    SELECT
        w."day",
        w."tenant_id",
        COUNT(*) AS "orders",
        COUNT(*) FILTER (WHERE w."is_paid") AS "paid_orders",
        SUM(w."total") FILTER (WHERE w."is_paid") AS "revenue",
        SUM(u."units") FILTER (WHERE w."is_paid") AS "items_sold",
        MIN(w."currency") AS "currency"
    FROM window_orders AS w
    LEFT JOIN order_units AS u ON u."order_id" = w."id"
    GROUP BY w."day", w."tenant_id"
),
customer_days AS (
    SELECT CAST(c."created_at" AS DATE) AS "day", c."tenant_id", COUNT(*) AS "new_customers"
    FROM "customers" AS c
    WHERE c."created_at" >= $window_start AND c."created_at" < $window_end
    GROUP BY ALL
)
SELECT
    COALESCE(o."day", c."day") AS "day",
    COALESCE(o."tenant_id", c."tenant_id") AS "tenant_id",
    o."currency",
    CAST(COALESCE(o."orders", 0) AS BIGINT) AS "orders",
    CAST(COALESCE(o."paid_orders", 0) AS BIGINT) AS "paid_orders",
    CAST(COALESCE(o."revenue", 0) AS DECIMAL(18, 2)) AS "revenue",
    CAST(COALESCE(o."items_sold", 0) AS BIGINT) AS "items_sold",
    CAST(o."revenue" / NULLIF(o."paid_orders", 0) AS DECIMAL(18, 2)) AS "average_order_value",
    CAST(COALESCE(c."new_customers", 0) AS BIGINT) AS "new_customers"
FROM order_days AS o
FULL OUTER JOIN customer_days AS c ON c."day" = o."day" AND c."tenant_id" = o."tenant_id"
ORDER BY "day", "tenant_id"
