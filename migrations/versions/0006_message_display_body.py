"""message display body: each message's PII-masked text, stored with it

Revision ID: 0006
Revises: 0005

The console showed every message through the PII masker on each view, which made the
first view of a long ticket the slowest page agents open. The masked text is now
worked out once, when the message is stored; messages already stored get theirs here,
in batches. "" means the body has nothing to mask (kefu/actions/guard.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def upgrade() -> None:
    from kefu.actions.guard import stored_display

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_body', sa.Text(), nullable=True))
    bind = op.get_bind()
    update = sa.text("UPDATE messages SET display_body = :shown WHERE id = :m")
    last = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, body FROM messages WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            break
        bind.execute(update, [{"m": m, "shown": stored_display(body or "")} for m, body in rows])
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('display_body')
