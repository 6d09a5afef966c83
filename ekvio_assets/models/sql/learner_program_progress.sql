WITH progress AS (
    SELECT *,
           coalesce(learner_deadline_at, deadline_at, start_at + ekvio_iso_period(deadline_period_at)) AS due_at,
           coalesce(completed_pdf, 0) + coalesce(completed_scorm, 0) + coalesce(completed_link, 0)
               + coalesce(completed_html, 0) + coalesce(completed_test, 0) + coalesce(completed_video, 0)
               + coalesce(completed_longread, 0) + coalesce(completed_document, 0) AS materials_completed
    FROM program_statistics
)
SELECT p.login, p.program_id, p.program_name, l.user_id, l.fio, p.user_status,
       l.group_region, l.group_city, l.group_role, l.group_position, l.group_team, l.group_department, l.group_function,
       p.program_status, p.progress AS progress_percent, p.points, p.program_points AS max_points,
       p.start_at AS started_at, p.active_at AS last_activity_at, p.end_at AS ended_at,
       p.materials_total, p.materials_completed,
       p.materials_completed / nullif(p.materials_total, 0) AS completion_share,
       p.deadline_type, p.learner_deadline_at, p.due_at,
       CASE WHEN p.program_status = $completed THEN coalesce(p.passed_at_time, p.end_at <= p.due_at) END AS is_on_time,
       CASE WHEN p.due_at IS NOT NULL
            THEN greatest(0, ceil(date_diff('second', p.due_at, coalesce(p.end_at, now())) / 86400))
       END AS days_late
FROM progress p
LEFT JOIN learners l USING (login)
