"""Response serialization: marshmallow's output, without its per-value machinery.

The response schemas in :mod:`ticketing.api.schemas` describe every answer:
flask-smorest documents them in the OpenAPI document and dumps what a view
returns through them. marshmallow's ``dump`` walks each value through several
generic layers (``serialize``, ``get_value``, the accessor, the field's
``_serialize``), which adds up on a page of 25 tickets of 16 fields each.

A schema derived from :class:`FastDumpSchema` compiles its fields once into a
plan: for each field the output key, the attribute to read and how to turn
its value into JSON. Values already of their field's JSON type (an ``int``
for an Integer, a ``str`` for a String, ``None``) are taken as they are;
anything else, and every field type without such a shortcut (datetimes,
methods, nested schemas, ...), goes through the field's own ``_serialize``. A
loaded column of an ORM object is read straight from the instance (what the
attribute would return), an unloaded one through the attribute as usual. The
result is the document marshmallow's ``dump`` produces
(tests/ticketing/test_dumping.py compares them for every response schema); a
schema with dump hooks (``pre_dump``/``post_dump``) is dumped by marshmallow
itself.

    class PartnerMessageSchema(FastDumpSchema):
        id = ma.fields.Integer(required=True)
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

import marshmallow as ma
from marshmallow.constants import missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from sqlalchemy import inspect as sa_inspect

#: Field types whose ``_serialize`` returns a value of this JSON type unchanged.
_PASS_THROUGH: tuple[tuple[type[ma.fields.Field[Any]], type], ...] = (
    (ma.fields.Integer, int),
    (ma.fields.String, str),
    (ma.fields.Boolean, bool),
)
_NOTHING: dict[str, Any] = {}


def _natural_type(field: ma.fields.Field[Any]) -> type | None:
    """The value type ``field`` writes unchanged, if its serialization is the stock one."""
    for base, natural in _PASS_THROUGH:
        if isinstance(field, base) and type(field)._serialize is base._serialize:
            if getattr(field, "as_string", False):
                return None
            return natural
    return None


def _read(obj: Any, key: str) -> Any:
    """``marshmallow.utils.get_value`` for a key without dots."""
    if not hasattr(obj, "__getitem__"):
        return getattr(obj, key, missing)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)


@cache
def _column_attributes(cls: type) -> frozenset[str]:
    """The column attributes of a mapped class (empty for anything else).

    Once loaded, such an attribute's value sits in the instance's ``__dict__``
    under its name, and reading the attribute returns exactly that.
    """
    mapper: Any = sa_inspect(cls, raiseerr=False)
    column_attrs = getattr(mapper, "column_attrs", None)
    if column_attrs is None:
        return frozenset()
    return frozenset(prop.key for prop in column_attrs)


def _converter(
    schema: ma.Schema, name: str, field: ma.fields.Field[Any]
) -> Callable[[Any, Any], Any]:
    """``convert(value, obj)``: the field's output for a value read from ``obj``."""
    serialize = field._serialize
    natural = _natural_type(field)
    if natural is None:
        return lambda value, obj: serialize(value, name, obj)

    def convert(value: Any, obj: Any) -> Any:
        # The stock fields write None as null and their own type as it is.
        if value is None or type(value) is natural:
            return value
        return serialize(value, name, obj)

    return convert


_READ, _COMPUTED, _PATH = range(3)


def compile_plan(schema: ma.Schema) -> Callable[[Any], dict[str, Any]] | None:
    """A function dumping one object like ``schema.dump``; None when it has dump hooks."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP] or schema.dict_class is not dict:
        return None
    if type(schema).get_attribute is not ma.Schema.get_attribute:
        return None
    # (kind, key, attribute or name, how to convert, default) in the schema's field order
    plan: list[tuple[int, str, str, Any, Any]] = []
    for name, field in schema.dump_fields.items():
        key = field.data_key if field.data_key is not None else name
        attribute = field.attribute or name
        if not field._CHECK_ATTRIBUTE:  # Method, Function, Constant: nothing to read
            plan.append((_COMPUTED, key, name, field._serialize, None))
        elif "." in attribute:
            plan.append((_PATH, key, name, field, None))
        else:
            plan.append(
                (_READ, key, attribute, _converter(schema, name, field), field.dump_default)
            )
    accessor = schema.get_attribute

    def dump_one(obj: Any) -> dict[str, Any]:
        cls: type = type(obj)
        columns = _column_attributes(cls)
        loaded = obj.__dict__ if columns else _NOTHING
        result: dict[str, Any] = {}
        for kind, key, attribute, convert, default in plan:
            if kind == _READ:
                if attribute in columns and attribute in loaded:
                    value = loaded[attribute]
                else:
                    value = _read(obj, attribute)
                    if value is missing:
                        value = default() if callable(default) else default
                        if value is missing:
                            continue
                result[key] = convert(value, obj)
                continue
            if kind == _COMPUTED:
                value = convert(None, attribute, obj)
            else:
                value = convert.serialize(attribute, obj, accessor=accessor)
            if value is not missing:
                result[key] = value
        return result

    return dump_one


class FastDumpSchema(ma.Schema):
    """A response schema that dumps through a plan compiled from its fields (see above)."""

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        compiled = self.__dict__.get("_fast_dump")  # the plan, False (none), None (not yet)
        if compiled is None:
            found = compile_plan(self)
            compiled = found if found is not None else False
            self._fast_dump = compiled
        many = self.many if many is None else bool(many)
        if compiled is False or (many and obj is None):
            return super().dump(obj, many=many)
        plan = cast(Callable[[Any], dict[str, Any]], compiled)  # neither None nor False here
        if many:
            return [plan(item) for item in obj]
        return plan(obj)
