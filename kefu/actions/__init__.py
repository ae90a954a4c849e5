"""The one write path: ``do_*`` functions. They flush, never commit, never do network I/O.

The caller (a request, a job, a CLI command) owns the transaction. Events ride on the
commit (``kefu.events.publish_on_commit``) and outbound work is an outbox row written
in the same transaction. See docs/subsystems/actions.md.
"""
