"""ekvio-assets: the Ekvio LMS statistics reports as Dagster assets in DuckDB."""
