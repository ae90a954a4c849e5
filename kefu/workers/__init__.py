"""Loops outside requests: the outbox sender (and later mail fetchers, SLA timers)."""
