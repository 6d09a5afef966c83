-- Per week (Monday, in the company's time zone), every week from the first to the last with any:
-- test attempts (by their end, else start), courses and programmes completed.
WITH events AS (
    SELECT date_trunc('week', coalesce(ended_at, started_at))::DATE AS week, 1 AS attempts, 0 AS courses, 0 AS programmes
    FROM attempts
    UNION ALL
    SELECT date_trunc('week', completed_at)::DATE, 0, 1, 0 FROM learner_course_progress WHERE is_completed
    UNION ALL
    SELECT date_trunc('week', ended_at)::DATE, 0, 0, 1 FROM learner_program_progress WHERE program_status = $completed
),
weeks AS (
    SELECT unnest(generate_series(min(week), max(week), INTERVAL 7 DAY))::DATE AS week
    FROM events
    HAVING min(week) IS NOT NULL
)
SELECT w.week,
       coalesce(sum(e.attempts), 0)::BIGINT AS test_attempts,
       coalesce(sum(e.courses), 0)::BIGINT AS courses_completed,
       coalesce(sum(e.programmes), 0)::BIGINT AS programmes_completed
FROM weeks w
LEFT JOIN events e USING (week)
GROUP BY w.week
ORDER BY w.week
