WITH ranked AS (
    SELECT *,
           row_number() OVER (
               PARTITION BY login, material_id
               ORDER BY coalesce(ended_at, started_at) DESC NULLS LAST, updated_at DESC NULLS LAST, attempt_id DESC
           ) AS recency
    FROM attempts
    WHERE login IS NOT NULL AND material_id IS NOT NULL
),
tried AS (
    SELECT login, material_id, $test AS material_type,
           count(*) AS attempts_count,
           max(percent) AS best_percent,
           max(points) AS best_points,
           any_value(status) FILTER (WHERE recency = 1) AS last_attempt_status,
           any_value(percent) FILTER (WHERE recency = 1) AS last_percent,
           any_value(points) FILTER (WHERE recency = 1) AS last_points,
           min(started_at) AS first_attempt_started_at,
           any_value(ended_at) FILTER (WHERE recency = 1) AS last_attempt_ended_at,
           bool_or(status = $completed) AS any_attempt_completed
    FROM ranked
    GROUP BY login, material_id
),
paired AS (
    SELECT coalesce(s.login, t.login) AS login, coalesce(s.material_id, t.material_id) AS material_id,
           CASE WHEN s.login IS NULL THEN t.material_type ELSE s.material_type END AS material_type,
           s.material_status, s.progress, s.points, s.start_at, s.end_at, s.update_at, s.attempts AS reported_attempts,
           t.attempts_count, t.best_percent, t.best_points, t.last_attempt_status, t.last_percent, t.last_points,
           t.first_attempt_started_at, t.last_attempt_ended_at, t.any_attempt_completed
    FROM material_statistics s
    FULL JOIN tried t
        ON s.login = t.login AND s.material_id = t.material_id AND s.material_type IS NOT DISTINCT FROM t.material_type
)
SELECT p.login, p.material_id, p.material_type, m.material_name, m.is_test, m.max_points,
       p.material_status, p.progress AS progress_percent, p.points,
       p.start_at AS started_at, p.end_at AS ended_at, p.update_at AS last_activity_at,
       p.reported_attempts, coalesce(p.attempts_count, 0) AS attempts_count, p.best_percent, p.best_points,
       p.last_attempt_status, p.last_percent, p.last_points,
       p.first_attempt_started_at, p.last_attempt_ended_at,
       coalesce(p.any_attempt_completed, false) OR coalesce(p.material_status = $completed, false) AS is_passed
FROM paired p
LEFT JOIN materials m ON m.material_id = p.material_id AND m.material_type IS NOT DISTINCT FROM p.material_type
