WITH described AS (
    -- The material's own fields: from the material objects the report sent, else (a table filled before
    -- they were kept apart) from its most recently changed report row.
    SELECT material_id, material_type, material_name, material_points, material_visibility FROM (
        SELECT material_id, material_type, material_name, material_points, material_visibility,
               0 AS fallback, _changed_at, NULL::VARCHAR AS login
        FROM reported_materials
        UNION ALL
        SELECT material_id, material_type, material_name, material_points, material_visibility,
               1 AS fallback, _changed_at, login
        FROM material_statistics
    )
    QUALIFY row_number() OVER (PARTITION BY material_id, material_type ORDER BY fallback, _changed_at DESC, login) = 1
),
assigned AS (
    SELECT material_id, material_type,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE material_status = $completed) AS learners_completed
    FROM material_statistics
    GROUP BY material_id, material_type
),
tried AS (
    -- Attempts are made on tests: an attempt's material is the test of its id.
    SELECT material_id, $test AS material_type, count(*) AS attempts_count, count(DISTINCT login) AS learners_attempted
    FROM attempts
    WHERE material_id IS NOT NULL
    GROUP BY material_id
),
known AS (
    SELECT material_id, material_type FROM described
    UNION
    SELECT material_id, material_type FROM tried
)
SELECT k.material_id,
       k.material_type,
       d.material_name,
       d.material_points AS max_points,
       d.material_visibility,
       coalesce(k.material_type = $test, false) AS is_test,
       coalesce(t.attempts_count, 0) AS attempts_count,
       coalesce(t.learners_attempted, 0) AS learners_attempted,
       coalesce(s.learners_assigned, 0) AS learners_assigned,
       coalesce(s.learners_completed, 0) AS learners_completed
FROM known k
LEFT JOIN described d ON d.material_id = k.material_id AND d.material_type IS NOT DISTINCT FROM k.material_type
LEFT JOIN assigned s ON s.material_id = k.material_id AND s.material_type IS NOT DISTINCT FROM k.material_type
LEFT JOIN tried t ON t.material_id = k.material_id AND t.material_type IS NOT DISTINCT FROM k.material_type
