-- Event funnel per tenant and day: for each step, the users who did it that day and
-- the conversion from the previous step and from the first. A user is the customer
-- when the event has one, else the anonymous session. Steps count independently (a
-- user may add to cart without a logged product view), so a rate can exceed 1 on
-- small days. One row per (day, tenant, step) for tenants with events that day.
-- Parameters: $window_start, $window_end (dates, end exclusive).
WITH steps ("step_number", "step") AS (
    VALUES (1, 'page_view'), (2, 'product_view'), (3, 'add_to_cart'), (4, 'checkout_started'), (5, 'purchase')
),
visits AS (
    SELECT
        CAST(e."occurred_at" AS DATE) AS "day",
        e."tenant_id",
        e."event_type",
        COALESCE('customer:' || CAST(e."customer_id" AS VARCHAR), 'session:' || e."session_id") AS "user_key"
    FROM "events" AS e
    WHERE e."occurred_at" >= $window_start AND e."occurred_at" < $window_end
),
step_users AS (
    SELECT "day", "tenant_id", "event_type", COUNT(DISTINCT "user_key") AS "users"
    FROM visits
    GROUP BY ALL
),
tenant_days AS (
    SELECT DISTINCT "day", "tenant_id" FROM visits
),
grid AS (
    SELECT t."day", t."tenant_id", s."step_number", s."step", COALESCE(u."users", 0) AS "users"
    FROM tenant_days AS t
    CROSS JOIN steps AS s
    LEFT JOIN step_users AS u
        ON u."day" = t."day" AND u."tenant_id" = t."tenant_id" AND u."event_type" = s."step"
)
SELECT
    "day",
    "tenant_id",
    CAST("step_number" AS INTEGER) AS "step_number",
    "step",
    CAST("users" AS BIGINT) AS "users",
    CAST("users" AS DOUBLE) / NULLIF(LAG("users") OVER funnel, 0) AS "conversion_from_previous",
    CAST("users" AS DOUBLE) / NULLIF(FIRST_VALUE("users") OVER funnel, 0) AS "conversion_from_first"
FROM grid
WINDOW funnel AS (PARTITION BY "day", "tenant_id" ORDER BY "step_number")
ORDER BY "day", "tenant_id", "step_number"
