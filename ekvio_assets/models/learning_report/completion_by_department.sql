-- Per department of the learner (learners.group_department): programme and course completion.
WITH departments AS (
    SELECT login, coalesce(group_department, $no_department) AS department FROM learners
),
programmes AS (
    SELECT d.department,
           count(*) AS programme_assignments,
           count(*) FILTER (WHERE p.program_status = $completed) AS programmes_completed,
           count(DISTINCT p.login) FILTER (WHERE p.program_status IS DISTINCT FROM $completed AND p.days_late > 0)
               AS overdue_learners
    FROM learner_program_progress p
    JOIN departments d USING (login)
    GROUP BY d.department
),
courses AS (
    SELECT d.department,
           count(*) AS course_assignments,
           count(*) FILTER (WHERE c.is_completed) AS courses_completed
    FROM learner_course_progress c
    JOIN departments d USING (login)
    GROUP BY d.department
)
SELECT department,
       count(*) AS learners,
       coalesce(any_value(p.programme_assignments), 0) AS programme_assignments,
       any_value(p.programmes_completed) / nullif(any_value(p.programme_assignments), 0) AS programme_completion_rate,
       coalesce(any_value(c.course_assignments), 0) AS course_assignments,
       any_value(c.courses_completed) / nullif(any_value(c.course_assignments), 0) AS course_completion_rate,
       coalesce(any_value(p.overdue_learners), 0) AS overdue_learners
FROM departments
LEFT JOIN programmes p USING (department)
LEFT JOIN courses c USING (department)
GROUP BY department
ORDER BY department = $no_department, department
