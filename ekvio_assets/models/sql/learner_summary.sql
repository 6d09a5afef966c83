WITH courses AS (
    SELECT login,
           count(*) AS courses_assigned,
           count(*) FILTER (WHERE is_completed) AS courses_completed,
           count(*) FILTER (WHERE is_required AND NOT is_completed) AS required_courses_open
    FROM learner_course_progress
    GROUP BY login
),
programs AS (
    SELECT login,
           count(*) AS programs_assigned,
           count(*) FILTER (WHERE program_status = $completed) AS programs_completed,
           count(*) FILTER (WHERE program_status = $fail) AS programs_failed,
           count(*) FILTER (WHERE program_status IS DISTINCT FROM $completed AND days_late > 0) AS programs_overdue
    FROM learner_program_progress
    GROUP BY login
),
tests AS (
    SELECT login,
           count(*) AS tests_assigned,
           count(*) FILTER (WHERE is_passed) AS tests_passed,
           count(*) FILTER (WHERE NOT is_passed AND last_attempt_status = $fail) AS tests_failed,
           avg(best_percent) AS average_test_percent
    FROM learner_material_progress
    WHERE is_test
    GROUP BY login
)
SELECT l.login, l.user_id, l.fio, l.user_status,
       l.group_region, l.group_city, l.group_role, l.group_position, l.group_team, l.group_department, l.group_function,
       coalesce(c.courses_assigned, 0) AS courses_assigned,
       coalesce(c.courses_completed, 0) AS courses_completed,
       coalesce(c.required_courses_open, 0) AS required_courses_open,
       coalesce(p.programs_assigned, 0) AS programs_assigned,
       coalesce(p.programs_completed, 0) AS programs_completed,
       coalesce(p.programs_failed, 0) AS programs_failed,
       coalesce(p.programs_overdue, 0) AS programs_overdue,
       coalesce(t.tests_assigned, 0) AS tests_assigned,
       coalesce(t.tests_passed, 0) AS tests_passed,
       coalesce(t.tests_failed, 0) AS tests_failed,
       t.average_test_percent,
       l.last_activity_at
FROM learners l
LEFT JOIN courses c USING (login)
LEFT JOIN programs p USING (login)
LEFT JOIN tests t USING (login)
