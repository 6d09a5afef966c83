"""The learning report: a self-contained HTML page drawn from the published analyst file after every publish."""
