-- One row: the numbers at the top of the report. A rate is null when there is nothing to divide.
WITH programmes AS (
    SELECT count(*) AS assignments,
           count(*) FILTER (WHERE program_status = $completed) AS completed,
           count(DISTINCT login) FILTER (WHERE program_status IS DISTINCT FROM $completed AND days_late > 0)
               AS overdue_learners
    FROM learner_program_progress
),
courses AS (
    SELECT count(*) AS assignments, count(*) FILTER (WHERE is_completed) AS completed
    FROM learner_course_progress
),
tests AS (
    SELECT count(*) AS attempts,
           count(*) FILTER (WHERE status = $completed) AS passed,
           count(*) FILTER (WHERE status IN ($completed, $fail)) AS graded
    FROM attempts
)
SELECT (SELECT count(*) FROM learners) AS learners,
       p.completed / nullif(p.assignments, 0) AS programme_completion_rate,
       c.completed / nullif(c.assignments, 0) AS course_completion_rate,
       p.overdue_learners,
       t.attempts AS test_attempts,
       t.passed / nullif(t.graded, 0) AS attempt_pass_rate
FROM programmes p, courses c, tests t
