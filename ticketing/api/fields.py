"""Strict marshmallow fields for the JSON API.

JSON bodies are validated strictly: a boolean must be ``true``/``false`` (not
``1`` or ``"yes"``), an id must be an integer (not ``true`` or ``"7"``), text
may not carry NUL or other control characters (PostgreSQL refuses NUL, and
control characters in a title only ever hide something).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload
from werkzeug.datastructures import FileStorage

from ticketing.db import MAX_ID, id_from_text

#: Control characters a text may not hold: all but tab, line feed and carriage return ...
CONTROL_MULTILINE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
#: ... and for one-line text (a title) all of them.
CONTROL_SINGLE_LINE = r"\x00-\x1f\x7f"
_CONTROL_MULTILINE = re.compile(f"[{CONTROL_MULTILINE}]")
_CONTROL_SINGLE_LINE = re.compile(f"[{CONTROL_SINGLE_LINE}]")
_ASCII_NUMBER = re.compile(r"[0-9]{1,10}")


def text_pattern(single_line: bool) -> str:
    """The OpenAPI ``pattern`` of a text field: no control characters (ECMA 262 and
    Python regular expressions alike), so clients and schemathesis see the rule."""
    return f"^[^{CONTROL_SINGLE_LINE if single_line else CONTROL_MULTILINE}]*$"


class Text(ma.fields.String):
    """A string of 1..``max_length`` characters with something besides whitespace in it."""

    def __init__(self, *, max_length: int, single_line: bool = False, **kwargs: Any) -> None:
        self.single_line = single_line
        metadata = {
            "minLength": 1,
            "maxLength": max_length,
            "pattern": text_pattern(single_line),
            **kwargs.pop("metadata", {}),
        }
        super().__init__(
            validate=ma.validate.Length(min=1, max=max_length), metadata=metadata, **kwargs
        )

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates ("\ud800") cannot be stored
            raise ma.ValidationError("Must be valid Unicode text.") from None
        text = unicodedata.normalize("NFC", text)
        pattern = _CONTROL_SINGLE_LINE if self.single_line else _CONTROL_MULTILINE
        if pattern.search(text):
            raise ma.ValidationError(
                "Must not contain control characters."
                + (" (one line only)" if self.single_line else "")
            )
        if not text.strip():
            raise ma.ValidationError("Must not be blank.")
        return text


class StrictBoolean(ma.fields.Boolean):
    """Only JSON ``true`` or ``false``."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Id(ma.fields.Integer):
    """A database id: a JSON integer from 1 to 2**31-1 (booleans and strings refused)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=ma.validate.Range(min=1, max=MAX_ID), **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(ma.fields.Integer):
    """A whole number in a query string: ASCII digits only, at most 10 of them.

    (``int()`` also reads ``１２``, ``١٢``, ``+12``, `` 12 `` and ``1_2``; none of those
    is a number in a URL.)
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int:
        if not isinstance(value, str) or not _ASCII_NUMBER.fullmatch(value):
            raise self.make_error("invalid", input=value)
        number: int = super()._deserialize(value, attr, data, **kwargs)
        return number


class QueryId(QueryInteger):
    """An id in a query string (``?partner_id=7``): 1 to 2**31-1, ASCII digits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=ma.validate.Range(min=1, max=MAX_ID), **kwargs)


class QueryAssignee(ma.fields.String):
    """``?assignee=``: ``me``, ``none`` or a staff id (1 to 2**31-1, ASCII digits)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": "^(me|none|[1-9][0-9]{0,9})$", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if value in ("me", "none") or id_from_text(value) is not None:
            return str(value)
        raise ma.ValidationError("Must be me, none or a staff id.")


class QueryBoolean(ma.fields.Boolean):
    """A boolean in a query string: ``true`` or ``false``, nothing else (not ``1``, ``yes``
    or an empty value)."""

    truthy = {"true"}
    falsy = {"false"}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if value == "true":
            return True
        if value == "false":
            return False
        raise self.make_error("invalid", input=value)


class UtcDateTime(ma.fields.DateTime):
    """Naive UTC timestamps from the database, written as ``2025-01-31T12:00:00Z``."""

    def _serialize(
        self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any
    ) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:  # how the database hands them over: already UTC
            return value.isoformat() + "Z"
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class File(Upload):  # type: ignore[misc]  # flask_smorest is untyped
    """A file part of a multipart/form-data body."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file part (multipart/form-data).")
        return value


class FormBoolean(ma.fields.Boolean):
    """A boolean form field: ``true``/``false`` (also ``1``/``0``)."""

    truthy = {"true", "1"}
    falsy = {"false", "0"}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if not isinstance(value, str) or value.lower() not in self.truthy | self.falsy:
            raise self.make_error("invalid", input=value)
        return value.lower() in self.truthy
