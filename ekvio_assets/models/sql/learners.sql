WITH seen AS (
    SELECT login, started_at AS first_at, ended_at AS last_at,
           NULL::VARCHAR AS user_status, NULL::TIMESTAMPTZ AS status_at
    FROM attempts
    UNION ALL
    SELECT login, start_at, CASE WHEN material_status <> $appointed THEN update_at END, user_status, _changed_at
    FROM material_statistics
    UNION ALL
    SELECT login, start_time, last_activity, user_status, _changed_at
    FROM course_statistics
    UNION ALL
    SELECT login, start_at, active_at, user_status, _changed_at
    FROM program_statistics
),
activity AS (
    SELECT login,
           min(first_at) AS first_activity_at,
           max(last_at) AS last_activity_at,
           arg_max(user_status, status_at) AS user_status
    FROM seen
    WHERE login IS NOT NULL
    GROUP BY login
),
course_learner AS (
    SELECT login, user_id, fio,
           group_region, group_city, group_role, group_position, group_team, group_department, group_function
    FROM course_statistics
    WHERE login IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY login ORDER BY _changed_at DESC, material_id) = 1
)
SELECT a.login, c.user_id, c.fio, a.user_status,
       c.group_region, c.group_city, c.group_role, c.group_position, c.group_team, c.group_department, c.group_function,
       a.first_activity_at, a.last_activity_at
FROM activity a
LEFT JOIN course_learner c USING (login)
