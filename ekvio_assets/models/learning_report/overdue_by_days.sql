-- Overdue learners by how late their most overdue programme is; every band, empty or not.
WITH late AS (
    SELECT login, max(days_late) AS days_late
    FROM learner_program_progress
    WHERE program_status IS DISTINCT FROM $completed AND days_late > 0
    GROUP BY login
),
bands(position, band, low, high) AS (
    VALUES (1, '1–7 days', 1, 7), (2, '8–30 days', 8, 30), (3, '31–90 days', 31, 90), (4, 'over 90 days', 91, NULL)
)
SELECT b.band AS days_late, count(l.login) AS learners
FROM bands b
LEFT JOIN late l ON l.days_late >= b.low AND (b.high IS NULL OR l.days_late <= b.high)
GROUP BY b.position, b.band
ORDER BY b.position
