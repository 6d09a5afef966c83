-- Run on a model's connection before its SELECT: a relative programme deadline arrives as an
-- ISO 8601 period (P30D, P2W, P1M, P1Y2M3D); DuckDB cannot cast that text to INTERVAL.
CREATE TEMP MACRO IF NOT EXISTS ekvio_iso_period(p) AS
    CASE WHEN regexp_full_match(trim(p), 'P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?') AND trim(p) <> 'P' THEN
        to_years(coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)Y', 1) AS INTEGER), 0))
        + to_months(coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)M', 1) AS INTEGER), 0))
        + to_days(7 * coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)W', 1) AS INTEGER), 0)
                  + coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)D', 1) AS INTEGER), 0))
    END;
