"""Pure rules: no SQLAlchemy, no Redis, no Jinja, no web framework."""
