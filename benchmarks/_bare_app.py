"""The ceilings for ticketing_throughput: bare Flask JSON endpoints.

    gunicorn -c ticketing/gunicorn.conf.py benchmarks._bare_app:app

The same gunicorn settings as the ticket service (the config file's
``wsgi_app`` is overridden by the argument).

- ``POST /bare`` parses a JSON body and answers a small JSON document (201);
  ``GET /bare`` answers JSON (200). No database, authentication, validation
  or metrics: what is left is gunicorn, Werkzeug and Flask.
- ``POST /bare/db`` does the same plus one ``INSERT ... RETURNING`` through
  SQLAlchemy Core in its own transaction, on ``TICKETING_DATABASE_URL``
  (table ``bare_items``, created by the benchmark): the least a request that
  stores something pays.
"""
from __future__ import annotations

import os

from flask import Flask, request
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert

app = Flask(__name__)

items = Table("bare_items", MetaData(), Column("id", Integer, primary_key=True),
              Column("title", Text), Column("description", Text))
_engine = None


def engine():
    global _engine
    if _engine is None:
        url = os.environ["TICKETING_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
        _engine = create_engine(url, pool_size=8)
    return _engine


@app.post("/bare")
def create():
    body = request.get_json()
    return {"id": 1, "title": body.get("title"), "status": "open"}, 201


@app.post("/bare/db")
def create_row():
    body = request.get_json()
    with engine().begin() as conn:
        new_id = conn.execute(insert(items).values(title=body.get("title"),
                                                   description=body.get("description"))
                              .returning(items.c.id)).scalar_one()
    return {"id": new_id, "title": body.get("title"), "status": "open"}, 201


@app.get("/bare")
def read():
    return {"items": [], "next_cursor": None}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
