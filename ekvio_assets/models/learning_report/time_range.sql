-- The period the company's data covers: the earliest and the latest activity of any learner.
SELECT min(first_activity_at) AS first_activity_at, max(last_activity_at) AS last_activity_at
FROM learners
