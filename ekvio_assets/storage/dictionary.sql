-- The data dictionary: every table of the database and its columns, in their declared order, with
-- their comments (null where a table or a column has none).
SELECT t.table_name, t.comment AS table_comment, c.column_name, c.data_type, c.comment AS column_comment
FROM duckdb_tables() AS t
JOIN duckdb_columns() AS c USING (database_name, schema_name, table_name)
WHERE t.database_name = current_database() AND t.schema_name = current_schema() AND NOT t.temporary
ORDER BY t.table_name, c.column_index
