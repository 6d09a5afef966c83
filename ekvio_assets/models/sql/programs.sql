WITH described AS (
    -- The programme's own fields: from the programme objects the report sent, else (a table filled before
    -- they were kept apart) from its most recently changed report row.
    SELECT program_id, program_name, deadline_type, deadline_at, deadline_period_at, program_points,
           materials_pdf, materials_scorm, materials_link, materials_html, materials_test, materials_video,
           materials_longread, materials_document, materials_total
    FROM (
        SELECT program_id, program_name, deadline_type, deadline_at, deadline_period_at, program_points,
               materials_pdf, materials_scorm, materials_link, materials_html, materials_test, materials_video,
               materials_longread, materials_document, materials_total,
               0 AS fallback, _changed_at, NULL::VARCHAR AS login
        FROM reported_programs
        UNION ALL
        SELECT program_id, program_name, deadline_type, deadline_at, deadline_period_at, program_points,
               materials_pdf, materials_scorm, materials_link, materials_html, materials_test, materials_video,
               materials_longread, materials_document, materials_total,
               1 AS fallback, _changed_at, login
        FROM program_statistics
    )
    QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY fallback, _changed_at DESC, login) = 1
),
assigned AS (
    SELECT program_id,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE program_status = $completed) AS learners_completed
    FROM program_statistics
    GROUP BY program_id
)
SELECT program_id, d.program_name, d.deadline_type, d.deadline_at,
       d.deadline_period_at AS relative_deadline,
       ekvio_iso_period(d.deadline_period_at) AS relative_deadline_interval,
       d.program_points AS max_points,
       d.materials_pdf, d.materials_scorm, d.materials_link, d.materials_html, d.materials_test, d.materials_video,
       d.materials_longread, d.materials_document, d.materials_total,
       coalesce(a.learners_assigned, 0) AS learners_assigned,
       coalesce(a.learners_completed, 0) AS learners_completed
FROM described d
LEFT JOIN assigned a USING (program_id)
