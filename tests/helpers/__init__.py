"""Shared test helpers, imported one way only: `from tests.helpers.<module> import name`.

Fixtures live in tests/conftest.py (and tests/cli/conftest.py); plain functions and
constants live here.
"""
