-- Per programme with learners: how many are done, under way, not started, failed, and overdue.
SELECT program_id,
       coalesce(any_value(program_name), 'Programme ' || program_id) AS programme,
       count(*) AS learners,
       count(*) FILTER (WHERE program_status = $completed) AS completed,
       count(*) FILTER (WHERE program_status IS DISTINCT FROM $completed
                          AND program_status IS DISTINCT FROM $appointed
                          AND program_status IS DISTINCT FROM $fail) AS in_progress,
       count(*) FILTER (WHERE program_status = $appointed) AS not_started,
       count(*) FILTER (WHERE program_status = $fail) AS failed,
       count(*) FILTER (WHERE program_status IS DISTINCT FROM $completed AND days_late > 0) AS overdue,
       count(*) FILTER (WHERE program_status = $completed) / count(*) AS completion_rate
FROM learner_program_progress
GROUP BY program_id
ORDER BY completion_rate, programme, program_id
