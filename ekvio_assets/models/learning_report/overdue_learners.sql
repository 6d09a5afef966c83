-- Learners with a programme not completed past its due date, the most overdue first.
SELECT login,
       any_value(fio) AS fio,
       coalesce(any_value(group_department), $no_department) AS department,
       count(*) AS programmes_overdue,
       max(days_late) AS max_days_late,
       first(coalesce(program_name, 'Programme ' || program_id) ORDER BY days_late DESC, program_name, program_id) AS most_overdue_programme,
       first(due_at ORDER BY days_late DESC, program_name, program_id) AS due_at
FROM learner_program_progress
WHERE program_status IS DISTINCT FROM $completed AND days_late > 0
GROUP BY login
ORDER BY max_days_late DESC, programmes_overdue DESC, login
LIMIT $top
