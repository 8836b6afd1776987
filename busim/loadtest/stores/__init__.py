"""Consumers' state and dedup stores on a real database: Redis by default, PostgreSQL for transactions."""
