"""Partitions, jobs, schedules and sensors: what keeps the tables fresh unattended."""
