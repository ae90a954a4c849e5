"""Macros (canned replies): the placeholders an agent may use and how they are filled.

A macro body is plain text with ``{{contact.name}}``-style placeholders. Only the names
in ``VARIABLES`` exist; anything else in braces is refused when the macro is saved, so a
typo shows up in the admin page rather than in a customer's inbox. Filling is plain
substitution, never a template engine: a macro body can't reach code or data beyond
these values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLES = (
    "contact.name",
    "contact.uid",
    "ticket.number",
    "ticket.subject",
    "agent.name",
)

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")
MAX_BODY_CHARS = 20_000


def unknown_variables(body: str) -> list[str]:
    """Placeholders in ``body`` that are not in ``VARIABLES``, in order, once each."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(body):
        if name not in VARIABLES and name not in seen:
            seen.append(name)
    return seen


def render_macro(body: str, values: Mapping[str, str]) -> str:
    """Fill the placeholders; a variable without a value becomes empty text."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), body)
