-- Stands in for the attempts report table when it was never loaded (a company without tests):
-- the columns the report reads, no rows. Temporary, so the read-only file is untouched.
CREATE TEMP TABLE attempts (
    material_id BIGINT,
    login VARCHAR,
    status VARCHAR,
    percent BIGINT,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ
)
