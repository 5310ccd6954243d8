-- The tenant directory for dashboards (names, plans), one row per live tenant.
SELECT
    t."id" AS "tenant_id",
    t."name",
    t."slug",
    t."plan",
    t."is_active",
    CAST(t."created_at" AS DATE) AS "created_on"
FROM "tenants" AS t
ORDER BY t."id"
