"""Copies dataclass fields to and from the proto fields of the same name, by reflection.

This is what makes a setting spelled once: a new scalar, enum, timestamp, repeated scalar or
nested-dataclass field of a domain dataclass reaches the wire by adding it to the dataclass and
to the message, with no converter code. Unset proto fields (an `optional` scalar without a
value, an empty repeated field, an absent message, enum value 0) are left out of the keyword
arguments, so the dataclass default applies (a field without a default gets the empty value):
the dataclasses are the only place defaults live.
Fields whose shape differs between the two (a oneof, a map of messages) are converted by hand in
`pbt_service.converters` and named in `skip`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from pbt_service.core.errors import InvalidArgumentError

EnumTable = Mapping[int, enum.Enum]
"""Proto enum number -> domain member; 0 (UNSPECIFIED) is never a key."""

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


class ProtoFields:
    """The reflection rules of one converter module: its enum tables, one per domain enum type."""

    def __init__(self, enums: Mapping[type[enum.Enum], EnumTable]) -> None:
        self._from_number = dict(enums)
        self._to_number: dict[enum.Enum, int] = {}
        for table in enums.values():
            for number, member in table.items():
                self._to_number.setdefault(member, number)

    def enum_number(self, member: enum.Enum) -> int:
        return self._to_number[member]

    def to_message(self, value: Any, message: Message, skip: Collection[str] = ()) -> None:
        """Sets every field of `message` that has a same-named field in dataclass `value`; None
        leaves a field unset."""
        for name, descriptor in wire_fields(type(value), message.DESCRIPTOR.fields_by_name):
            if name in skip or (item := getattr(value, name)) is None:
                continue
            target = getattr(message, name)
            if _is_map(descriptor):
                target.update(item)
            elif descriptor.is_repeated and descriptor.message_type is not None:
                for element in item:
                    self.to_message(element, target.add())
            elif descriptor.is_repeated:
                target.extend(item)
            elif descriptor.message_type is not None and descriptor.message_type.full_name == _TIMESTAMP:
                target.FromDatetime(item.astimezone(timezone.utc))
            elif descriptor.message_type is not None:
                target.SetInParent()
                self.to_message(item, target)
            elif descriptor.enum_type is not None:
                setattr(message, name, self._to_number[item])
            else:
                setattr(message, name, item)

    def from_message(self, message: Message, cls: type, path: str, skip: Collection[str] = ()) -> dict[str, Any]:
        """Keyword arguments of `cls` for the set fields of `message`.

        Raises InvalidArgumentError naming `path` for an enum number the domain does not know, or an unset
        enum field whose dataclass field has no default.
        """
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for name, descriptor in wire_fields(cls, message.DESCRIPTOR.fields_by_name):
            if name in skip:
                continue
            item = getattr(message, name)
            if _is_map(descriptor):
                kwargs[name] = dict(item)
            elif descriptor.is_repeated and descriptor.message_type is not None:
                if item or not has_default(cls, name):
                    element_cls = _element_class(hints[name])
                    kwargs[name] = tuple(
                        element_cls(**self.from_message(e, element_cls, f"{path}.{name}[{i}]"))
                        for i, e in enumerate(item)
                    )
            elif descriptor.is_repeated:
                if item or not has_default(cls, name):
                    kwargs[name] = tuple(item)
            elif descriptor.message_type is not None:
                if not message.HasField(name):
                    continue
                if descriptor.message_type.full_name == _TIMESTAMP:
                    kwargs[name] = _datetime(item, f"{path}.{name}")
                else:
                    nested = _element_class(hints[name])
                    kwargs[name] = nested(**self.from_message(item, nested, f"{path}.{name}"))
            elif descriptor.enum_type is not None:
                self._enum_from_number(kwargs, cls, name, item, hints[name], f"{path}.{name}")
            elif not descriptor.has_presence or message.HasField(name):
                kwargs[name] = item
        return kwargs

    def _enum_from_number(
        self, kwargs: dict[str, Any], cls: type, name: str, number: int, hint: Any, path: str
    ) -> None:
        table = self._from_number[_element_class(hint)]
        if number in table:
            kwargs[name] = table[number]
        elif number != 0:
            raise InvalidArgumentError(f"{path}: unknown value {number}")
        elif not has_default(cls, name):
            raise InvalidArgumentError(f"{path}: must be set")


def wire_fields(cls: type, proto_fields: Mapping[str, Any]) -> list[tuple[str, FieldDescriptor]]:
    """(name, proto field) for each field of dataclass `cls` that the message has by name."""
    return [(f.name, proto_fields[f.name]) for f in dataclasses.fields(cls) if f.name in proto_fields]


def has_default(cls: type, name: str) -> bool:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def timestamp_to_proto(value: datetime | None) -> Timestamp:
    """An empty Timestamp for None."""
    stamp = Timestamp()
    if value is not None:
        stamp.FromDatetime(value.astimezone(timezone.utc))
    return stamp


def _datetime(stamp: Timestamp, path: str) -> datetime:
    """The timestamp as an aware UTC datetime; InvalidArgumentError naming `path` for seconds or
    nanos outside what a Timestamp (years 1 to 9999) or a datetime can hold."""
    try:
        return stamp.ToDatetime(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as error:
        raise InvalidArgumentError(f"{path}: not a valid timestamp ({str(error)[:80]})") from None


def _is_map(descriptor: FieldDescriptor) -> bool:
    return bool(descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _element_class(hint: Any) -> type:
    """The class inside `X`, `X | None` or `tuple[X, ...]`."""
    if isinstance(hint, type):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    if len(args) == 1 and (typing.get_origin(hint) in (tuple, typing.Union, types.UnionType)):
        return _element_class(args[0])
    raise TypeError(f"cannot convert a field of type {hint!r} by reflection; convert it by hand")
