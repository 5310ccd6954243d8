"""gold/<summary>: business summaries in PostgreSQL (DuckDB over silver, Postgres IO manager)."""
