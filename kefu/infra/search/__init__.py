"""Search machinery: in-memory indexes ranked with kefu.domain.text.

See docs/subsystems/helpcenter.md.
"""
