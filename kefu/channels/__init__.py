"""Adapters per medium: parse inbound into plain dataclasses, render and send outbound.

Channels hold no business rules; they call ``actions``. See docs/subsystems/channels.md.
"""
