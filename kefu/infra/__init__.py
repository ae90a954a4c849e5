"""Swappable machinery: database engine, pub/sub, search, mail, files."""
