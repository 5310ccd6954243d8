-- Customer lifetime value: for every live customer, the paid orders (paid, shipped,
-- delivered) and paid invoices so far. lifetime_value = order revenue + invoiced
-- (subscription and one-off) revenue. Unpartitioned: the whole table is rebuilt.
WITH paid_orders AS (
    SELECT
        o."customer_id",
        COUNT(*) AS "orders",
        SUM(o."total") AS "revenue",
        MIN(o."created_at") AS "first_order_at",
        MAX(o."created_at") AS "last_order_at"
    FROM "orders" AS o
    WHERE o."status" IN ('paid', 'shipped', 'delivered') AND o."customer_id" IS NOT NULL
    GROUP BY o."customer_id"
),
paid_invoices AS (
    SELECT i."customer_id", SUM(i."amount_paid") AS "invoiced"
    FROM "invoices" AS i
    WHERE i."status" = 'paid'
    GROUP BY i."customer_id"
)
SELECT
    c."id" AS "customer_id",
    c."tenant_id",
    CAST(c."created_at" AS DATE) AS "customer_since",
    CAST(COALESCE(o."orders", 0) AS BIGINT) AS "paid_orders",
    CAST(COALESCE(o."revenue", 0) AS DECIMAL(18, 2)) AS "order_revenue",
    CAST(COALESCE(i."invoiced", 0) AS DECIMAL(18, 2)) AS "invoice_revenue",
    CAST(COALESCE(o."revenue", 0) + COALESCE(i."invoiced", 0) AS DECIMAL(18, 2)) AS "lifetime_value",
    CAST(o."revenue" / NULLIF(o."orders", 0) AS DECIMAL(18, 2)) AS "average_order_value",
    o."first_order_at",
    o."last_order_at"
FROM "customers" AS c
LEFT JOIN paid_orders AS o ON o."customer_id" = c."id"
LEFT JOIN paid_invoices AS i ON i."customer_id" = c."id"
ORDER BY c."id"
