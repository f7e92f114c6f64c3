"""The shape of a zone document, validated by pydantic (types, ranges, unknown keys).

DNS meaning (names, record data, delegations) is checked in `compile.py`; this module
only knows what keys exist and what kind of value each takes.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gdns.zone.duration import ttl_seconds
from gdns.zone.errors import Path
from gdns.zone.rdata import describe
from gdns.zone.yamlsafe import Document

Seconds = Annotated[int, BeforeValidator(ttl_seconds), Field(ge=0, le=2**31 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SOAModel(Strict):
    mname: str
    rname: str
    serial: Annotated[int, Field(ge=1, le=2**32 - 1)] | None = None
    refresh: Seconds = 3600
    retry: Seconds = 600
    expire: Seconds = 1209600
    minimum: Seconds = 60
    ttl: Seconds | None = None


class ZoneModel(Strict):
    origin: str
    ttl: Seconds = 300
    soa: SOAModel
    ns: Any  # an rrset: parsed with the record-data rules in compile.py
    records: dict[str, Any] = Field(default_factory=dict)
    pools: dict[str, Any] = Field(default_factory=dict)  # checked in poolcompile.py
    checks: dict[str, Any] = Field(default_factory=dict)  # checked in checks.py


_MESSAGES = {
    "missing": "missing required key",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "list_type": "expected a list",
    "bool_type": "expected true or false",
    "float_type": "expected a number",
    "too_short": "must not be empty",
}


def validate(model: type[Strict], data: Any, doc: Document, base: Path = ()):
    """Validate `data` against `model`; return (instance or None, positioned errors)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            path = base + tuple(err["loc"])
            kind = err["type"]
            if kind == "extra_forbidden":
                errors.append(doc.error(path, _unknown_key(model, path, base), key=True))
                continue
            message = _MESSAGES.get(kind) or err["msg"].removeprefix("Value error, ")
            if kind == "missing":
                message = f"missing required key {path[-1]!r}"
                path = path[:-1]
            elif kind in _MESSAGES and kind != "too_short":
                message += f", got {describe(err.get('input'))}"
            errors.append(doc.error(path, message[0].lower() + message[1:]))
        return None, errors


def _unknown_key(model: type[Strict], path: Path, base: Path) -> str:
    key = str(path[-1])
    owner: Any = model
    for part in path[len(base) : -1]:
        field = owner.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        owner = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if owner is None:
            break
    known = list(owner.model_fields) if owner else []
    return unknown_key_message(key, known)


def unknown_key_message(key: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(key, known, n=1)
    text = f"unknown key {key!r}"
    if hint:
        return f"{text} (did you mean {hint[0]!r}?)"
    if known:
        return f"{text} (expected one of: {', '.join(known)})"
    return text
