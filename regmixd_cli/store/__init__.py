"""Logs in: readers for every log format, ingest, and the trajectory store on disk."""
