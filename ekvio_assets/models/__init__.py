"""Analytics models: DuckDB tables joined from the report tables, one Dagster asset each."""
