"""Ticket search: a full-text index over titles, descriptions and messages.

Revision ID: 0008_ticket_search
Revises: 0007_ids_never_reused

One document per ticket (its title, its partner's name, its description) and
one per message (staff's internal notes kept apart), in the table
``ticket_search`` that ``ticketing/desk/search.py`` reads and writes:

- SQLite: an FTS5 table (tokenizer ``porter unicode61``, diacritics removed)
  whose rowid is ``ticket id * 2**32 + message id`` (0: the ticket's own
  document), with columns title, partner, body (a description or a reply) and
  note (an internal note's text: partners' searches leave the column out);
- PostgreSQL: a row per document with its ``tsvector`` (configuration
  ``english``; weights A title, B partner, C text) under a GIN index.

The tickets and messages already there are indexed by the upgrade.
"""

from alembic import op

revision = "0008_ticket_search"
down_revision = "0007_ids_never_reused"
branch_labels = None
depends_on = None

SPAN = 2**32


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE ticket_search USING fts5("
            "title, partner, body, note, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO ticket_search (rowid, title, partner, body, note) "
            f"SELECT t.id * {SPAN}, t.title, p.name, t.description, '' "
            "FROM tickets t JOIN partners p ON p.id = t.partner_id"
        )
        op.execute(
            "INSERT INTO ticket_search (rowid, title, partner, body, note) "
            f"SELECT m.ticket_id * {SPAN} + m.id, '', '', "
            "CASE WHEN m.internal THEN '' ELSE m.body END, "
            "CASE WHEN m.internal THEN m.body ELSE '' END FROM messages m"
        )
        return
    op.execute(
        "CREATE TABLE ticket_search ("
        "ticket_id INTEGER NOT NULL "
        "CONSTRAINT fk_ticket_search_ticket_id_tickets REFERENCES tickets (id), "
        "message_id INTEGER "
        "CONSTRAINT fk_ticket_search_message_id_messages REFERENCES messages (id), "
        "internal BOOLEAN NOT NULL, "
        "document TSVECTOR NOT NULL)"
    )
    op.execute(
        "CREATE UNIQUE INDEX ix_ticket_search_ticket_id_message_id "
        "ON ticket_search (ticket_id, coalesce(message_id, 0))"
    )
    op.execute("CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)")
    op.execute(
        "INSERT INTO ticket_search (ticket_id, message_id, internal, document) "
        "SELECT t.id, NULL, false, "
        "setweight(to_tsvector('english', t.title), 'A') "
        "|| setweight(to_tsvector('english', p.name), 'B') "
        "|| setweight(to_tsvector('english', t.description), 'C') "
        "FROM tickets t JOIN partners p ON p.id = t.partner_id"
    )
    op.execute(
        "INSERT INTO ticket_search (ticket_id, message_id, internal, document) "
        "SELECT m.ticket_id, m.id, m.internal, setweight(to_tsvector('english', m.body), 'C') "
        "FROM messages m"
    )


def downgrade():
    op.execute("DROP TABLE ticket_search")
