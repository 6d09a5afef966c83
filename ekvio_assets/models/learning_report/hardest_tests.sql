-- Tests by the share of their graded attempts (completed or fail) that passed, the lowest first.
SELECT a.material_id,
       coalesce(any_value(m.material_name), 'Test ' || a.material_id) AS test,
       count(*) AS attempts,
       count(DISTINCT a.login) AS learners,
       count(*) FILTER (WHERE a.status = $completed)
           / nullif(count(*) FILTER (WHERE a.status IN ($completed, $fail)), 0) AS pass_rate,
       avg(a.percent) AS average_percent
FROM attempts a
LEFT JOIN materials m ON m.material_id = a.material_id AND m.material_type = $test
WHERE a.material_id IS NOT NULL
GROUP BY a.material_id
HAVING pass_rate IS NOT NULL
ORDER BY pass_rate, average_percent, attempts DESC, test, a.material_id
LIMIT $top
