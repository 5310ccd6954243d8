-- Monthly recurring revenue per tenant at the end of each day, from the version of each
-- subscription live at the end of that day (its history: _valid_from, _valid_to; null
-- bounds when only the current rows are kept): a subscription counts from started_at until
-- canceled_at (trials have no started_at and do not count); its monthly value is
-- price x quantity, divided by 12 for yearly billing. One row per (day, tenant) that had a
-- subscription started by that day. Parameters: $window_start, $window_end (dates, end
-- exclusive).
WITH days AS (
    SELECT CAST(d AS DATE) AS "day"
    FROM range(CAST($window_start AS TIMESTAMP), CAST($window_end AS TIMESTAMP), INTERVAL 1 DAY) AS t(d)
),
subscriptions AS (
    SELECT
        s."tenant_id",
        s."started_at",
        s."canceled_at",
        s."_valid_from",
        s."_valid_to",
        -- twelve times the monthly value, exact in decimals
        s."price" * s."quantity" * CASE WHEN s."billing_interval" = 'year' THEN 1 ELSE 12 END AS "value_x12"
    FROM "subscriptions" AS s
    WHERE s."started_at" IS NOT NULL
),
day_subscriptions AS (
    SELECT
        d."day",
        s.*,
        s."canceled_at" IS NULL OR s."canceled_at" >= d."day" + 1 AS "is_active",
        CAST(s."started_at" AS DATE) = d."day" AS "is_new",
        s."canceled_at" IS NOT NULL AND CAST(s."canceled_at" AS DATE) = d."day" AS "is_churned"
    FROM days AS d
    JOIN subscriptions AS s
        ON s."started_at" < d."day" + 1
        -- the version live at the end of the day (a version ending at midnight still was)
        AND (s."_valid_from" IS NULL OR s."_valid_from" < d."day" + 1)
        AND (s."_valid_to" IS NULL OR s."_valid_to" >= d."day" + 1)
)
SELECT
    "day",
    "tenant_id",
    CAST(COALESCE(SUM("value_x12") FILTER (WHERE "is_active"), 0) / 12 AS DECIMAL(18, 2)) AS "mrr",
    CAST(COUNT(*) FILTER (WHERE "is_active") AS BIGINT) AS "active_subscriptions",
    CAST(COUNT(*) FILTER (WHERE "is_new") AS BIGINT) AS "new_subscriptions",
    CAST(COALESCE(SUM("value_x12") FILTER (WHERE "is_new"), 0) / 12 AS DECIMAL(18, 2)) AS "new_mrr",
    CAST(COUNT(*) FILTER (WHERE "is_churned") AS BIGINT) AS "churned_subscriptions",
    CAST(COALESCE(SUM("value_x12") FILTER (WHERE "is_churned"), 0) / 12 AS DECIMAL(18, 2)) AS "churned_mrr"
FROM day_subscriptions
GROUP BY "day", "tenant_id"
ORDER BY "day", "tenant_id"
