"""Planning: the candidate search, constraints, schedules, exports and comparisons."""
