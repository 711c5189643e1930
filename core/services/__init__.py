"""Core services: each function is one unit of work on the SQL database."""
