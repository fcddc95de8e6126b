"""Synthetic worlds with a known truth, their oracle, and proxy designs."""
