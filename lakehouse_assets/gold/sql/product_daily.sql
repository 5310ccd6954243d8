-- Product performance per day: what each product sold in the paid orders (paid,
-- shipped, delivered) created that day. Revenue is quantity x unit price; net
-- revenue subtracts line discounts. Name and category are the product's current
-- ones. Items without a product are left out. Parameters: $window_start,
-- $window_end (dates, end exclusive).
WITH sold AS (
    SELECT
        CAST(o."created_at" AS DATE) AS "day",
        o."tenant_id",
        i."order_id",
        i."product_id",
        i."quantity",
        i."quantity" * i."unit_price" AS "gross",
        COALESCE(i."discount", 0) AS "discount"
    FROM "order_items" AS i
    JOIN "orders" AS o ON o."id" = i."order_id"
    WHERE o."created_at" >= $window_start AND o."created_at" < $window_end
        AND o."status" IN ('paid', 'shipped', 'delivered')
        AND i."product_id" IS NOT NULL
)
SELECT
    s."day",
    s."product_id",
    COALESCE(MIN(p."tenant_id"), MIN(s."tenant_id")) AS "tenant_id",
    MIN(p."name") AS "product_name",
    MIN(p."category") AS "category",
    CAST(COUNT(DISTINCT s."order_id") AS BIGINT) AS "orders",
    CAST(SUM(s."quantity") AS BIGINT) AS "units",
    CAST(SUM(s."gross") AS DECIMAL(18, 2)) AS "gross_revenue",
    CAST(SUM(s."discount") AS DECIMAL(18, 2)) AS "discounts",
    CAST(SUM(s."gross") - SUM(s."discount") AS DECIMAL(18, 2)) AS "net_revenue"
FROM sold AS s
LEFT JOIN "products" AS p ON p."id" = s."product_id"
GROUP BY s."day", s."product_id"
ORDER BY s."day", s."product_id"
