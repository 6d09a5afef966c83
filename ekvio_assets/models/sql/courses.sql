WITH latest AS (
    SELECT material_id, course_name, is_required, pdf_total, link_total, html_total,
           max_interaction_scores, max_final_scores
    FROM course_statistics
    QUALIFY row_number() OVER (PARTITION BY material_id ORDER BY _changed_at DESC, user_id) = 1
),
assigned AS (
    SELECT material_id,
           bool_or(scorm_status IS NOT NULL) AS has_scorm,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE complete_date IS NOT NULL) AS learners_completed
    FROM course_statistics
    GROUP BY material_id
)
SELECT material_id, l.course_name, l.is_required = 1 AS is_required,
       l.pdf_total, l.link_total, l.html_total,
       a.has_scorm, l.max_interaction_scores, l.max_final_scores, a.learners_assigned, a.learners_completed
FROM latest l
JOIN assigned a USING (material_id)
