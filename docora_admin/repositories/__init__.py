"""SQL only. Every function takes a psycopg connection (rows come back as dicts)."""
