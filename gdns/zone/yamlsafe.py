"""YAML loading that keeps positions and closes YAML 1.1's traps.

* Only ``true``/``false`` are booleans: ``NO`` (Norway), ``yes``, ``on`` stay strings.
* Integers are decimal without a leading zero: ``010`` stays the string "010", never 8;
  ``1:30`` stays a string (no base-60).
* No timestamps, no merge keys, no custom tags.
* Mapping keys are always strings (their source text) and a duplicate key is an error.

Every value and key gets a 1-based (line, column), looked up by its path in the document.

Two builders give the same data. The fast one reads the parser's events and records no
positions: a large zone would otherwise keep a (line, column) for each of its values, and
the whole node tree, in memory at once. It steps aside for anything out of the ordinary
(anchors, aliases, explicit tags, duplicate or complex keys, deep nesting, a syntax error, a
second document), and the node-based builder then decides, with its exact errors. A
document built the fast way keeps its source (compressed) instead, and finds the positions
it is asked for in it: those of a whole compile's errors in one pass (see `deferred`).
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from gdns.zone.errors import Path, ZoneError

try:  # libyaml's parser is several times faster on large zones
    _BaseLoader = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - pure-python PyYAML build
    _BaseLoader = yaml.SafeLoader

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    yaml_implicit_resolvers: dict = {}


_StrictLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)\.[0-9]*)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)
_StrictLoader.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


@dataclass
class Document:
    """A parsed YAML document and where each of its parts was written."""

    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Built the fast way: the source, compressed (a large zone's text would otherwise stay in
    # memory as it compiles), in which positions are looked up when asked for; the tables
    # above stay empty.
    packed: bytes | None = field(default=None, repr=False)
    # While set (a compile), error() leaves the position to resolve(), which finds every
    # error's in one pass over the source instead of one pass each.
    deferred: bool = field(default=False, repr=False)

    def where(self, path: Path, key: bool = False) -> tuple[int, int]:
        """Position of the value (or key) at `path`, else of its nearest ancestor."""
        if self.packed is not None:
            values, keys = self._look_up([(path, key)])
            return _where(values, keys, path, key)
        return _where(self.values, self.keys, path, key)

    def error(self, path: Path, message: str, key: bool = False) -> ZoneError:
        if self.deferred and self.packed is not None:
            return ZoneError(self.file, _KEY if key else _VALUE, 0, path, message)
        line, col = self.where(path, key)
        return ZoneError(self.file, line, col, path, message)

    def resolve(self, errors: list[ZoneError]) -> list[ZoneError]:
        """`errors` with the positions error() left out while deferred filled in."""
        wanted = [(e.path, e.line == _KEY) for e in errors if e.line in (_VALUE, _KEY)]
        if not wanted:
            return errors
        values, keys = self._look_up(wanted)
        out = []
        for e in errors:
            if e.line in (_VALUE, _KEY):
                line, column = _where(values, keys, e.path, e.line == _KEY)
                e = dataclasses.replace(e, line=line, column=column)
            out.append(e)
        return out

    def _look_up(self, wanted: Iterable[tuple[Path, bool]]) -> tuple[dict, dict]:
        """The positions _where() needs for each (path, key) wanted: of the key or value at the
        path, and of every ancestor's value (what a missing path falls back to)."""
        values: set[Path] = set()
        keys: set[Path] = set()
        for path, key in wanted:
            if key:
                keys.add(path)
            values.update(path[:i] for i in range(len(path) + 1))
        assert self.packed is not None
        return _positions(zlib.decompress(self.packed).decode(), values, keys)


_VALUE, _KEY = -1, -2  # the line of an error whose position is still to be resolved


def _where(values: dict, keys: dict, path: Path, key: bool) -> tuple[int, int]:
    table = keys if key else values
    if path in table:
        return table[path]
    while path:
        path = path[:-1]
        if path in values:
            return values[path]
    return (1, 1)


def _positions(text: str, values: set[Path], keys: set[Path]) -> tuple[dict, dict]:
    """The (line, column) of the values and keys at the paths given, from the parser's events
    (for a document the fast builder took: no aliases, tags or duplicates to follow)."""
    found_values: dict[Path, tuple[int, int]] = {}
    found_keys: dict[Path, tuple[int, int]] = {}
    loader = _StrictLoader(text)
    try:
        get = loader.get_event
        get(), get()  # the stream and the document start
        frames: list[list] = []  # per open collection: its path, is a mapping, next index / key
        while True:
            event = get()
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                frames.pop()
                if not frames:
                    break
                continue
            mark = event.start_mark
            if not frames:
                path: Path = ()
            else:
                frame = frames[-1]
                if not frame[1]:  # a sequence item
                    path = frame[0] + (frame[2],)
                    frame[2] += 1
                elif frame[2] is None:  # a mapping's key
                    frame[2] = event.value
                    if frame[0] + (event.value,) in keys:
                        found_keys[frame[0] + (event.value,)] = (mark.line + 1, mark.column + 1)
                    continue
                else:  # the key's value
                    path = frame[0] + (frame[2],)
                    frame[2] = None
            if path in values:
                found_values[path] = (mark.line + 1, mark.column + 1)
            if kind is MappingStartEvent:
                frames.append([path, True, None])
            elif kind is SequenceStartEvent:
                frames.append([path, False, 0])
            elif not frames:
                break  # the document is one scalar
    finally:
        loader.dispose()
    return found_values, found_keys


class StepAside(Exception):
    """Raised by a sink: the fast builder steps aside, and the node-based one reads the file."""


Sink = Callable[["Document", dict, str, str, Any], bool]
STREAMED = ("records", "pools")  # the top-level mappings whose entries a sink is offered


class YAMLProblem(Exception):
    def __init__(self, error: ZoneError):
        super().__init__(str(error))
        self.error = error


def load(text: str, file: str, sink: Sink | None = None) -> Document:
    """Parse one YAML document; raise YAMLProblem with a positioned error.

    `sink(doc, root, section, key, value)`: offered each entry of the top-level `records` and
    `pools` mappings (the section) as soon as it is read, with the document it will be part of
    and the top-level mapping read so far; an entry it takes (returns True for) is left out of
    the document. Only the fast
    builder offers entries (a document it returns has `packed` set); the sink's errors are
    deferred (see Document.deferred) until the compile resolves them."""
    doc = Document(file, None, packed=zlib.compress(text.encode(), 1), deferred=sink is not None)
    data = _fast(text, None if sink is None else lambda *entry: sink(doc, *entry))
    if data is not _ASIDE:
        doc.data = data
        return doc
    return _load_nodes(text, file)


def _load_nodes(text: str, file: str) -> Document:
    """The node-based builder: positions as it goes, and every error exact."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise YAMLProblem(ZoneError(file, line, col, (), f"YAML syntax: {exc.problem}")) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(ZoneError(file, 0, 0, (), f"YAML: {exc}")) from None
    finally:
        loader.dispose()
    doc = Document(file, None)
    if node is not None:
        # Aliases may repeat a part, but not blow a small file up into millions of values.
        doc.data = _build(node, (), doc, 10 * len(text) + 10_000)
    return doc


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


MAX_DEPTH = 64  # zone documents nest a few levels; deeper would exhaust Python's recursion


def _build(node: yaml.Node, path: Path, doc: Document, budget: int) -> Any:
    if len(path) > MAX_DEPTH:
        raise YAMLProblem(doc.error(path, f"nested more than {MAX_DEPTH} levels deep"))
    if len(doc.values) >= budget:
        raise YAMLProblem(doc.error(path, "aliases expand to too many values"))
    doc.values[path] = _pos(node)
    if isinstance(node, yaml.CollectionNode) and node.tag not in (_MAP, _SEQ):
        raise YAMLProblem(doc.error(path, f"unsupported YAML tag {node.tag!r}"))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YAMLProblem(
                    ZoneError(doc.file, *_pos(key_node), path, "a mapping key must be a plain scalar")
                )
            key = key_node.value
            if key in out:
                first = doc.keys[path + (key,)]
                raise YAMLProblem(
                    ZoneError(
                        doc.file,
                        *_pos(key_node),
                        path + (key,),
                        f"duplicate key {key!r} (first defined at line {first[0]})",
                    )
                )
            doc.keys[path + (key,)] = _pos(key_node)
            out[key] = _build(value_node, path + (key,), doc, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, budget) for i, item in enumerate(node.value)]
    try:
        return _scalar(node.tag, node.value, node.style)
    except _BadScalar as exc:
        raise YAMLProblem(doc.error(path, str(exc))) from None


class _BadScalar(ValueError):
    pass


def _scalar(tag: str, text: str, style: str | None) -> Any:
    if tag == _STR or (style and tag != _NULL and tag in (_INT, _FLOAT, _BOOL)):
        return text
    # An explicit tag (`!!int 0x10`) bypasses the resolvers above, so its text is checked here.
    try:
        if tag == _INT:
            return int(text)
        if tag == _FLOAT:
            return float(text)
    except ValueError:
        what = "an integer" if tag == _INT else "a number"
        raise _BadScalar(f"{text!r} is not {what}") from None
    if tag == _BOOL:
        if text.lower() not in ("true", "false"):
            raise _BadScalar(f"{text!r} is not a boolean (use true or false)")
        return text.lower() == "true"
    if tag == _NULL:
        return None
    raise _BadScalar(f"unsupported YAML tag {tag!r}")


_ASIDE = object()  # the fast builder steps aside: the node-based one decides


def _fast(text: str, sink: Callable[[dict, str, str, Any], bool] | None = None) -> Any:
    """The document's data from the parser's events, or _ASIDE for anything unusual.

    It keeps no nodes and no positions, and it calls the parser once per event, so a thread
    parsing a large zone lets the others run between events."""
    loader = _StrictLoader(text)
    try:
        return _events(loader, sink)
    except (yaml.YAMLError, StepAside):
        return _ASIDE  # the node-based builder reports it, with its position
    finally:
        loader.dispose()


def _events(loader: _StrictLoader, sink: Callable[[dict, str, str, Any], bool] | None = None) -> Any:
    get, resolve, scalar_node = loader.get_event, loader.resolve, yaml.ScalarNode
    # One string object for equal text (`address`, `up`, an address used many times): a large
    # zone repeats them thousands of times. Not for the owner names two levels down
    # (records.<name>), which are all different, nor for the values of records a sink takes
    # (compiled at once: the table would keep every one of them until the end).
    shared: dict[str, str] = {}
    share = shared.setdefault

    if type(get()) is not StreamStartEvent or type(get()) is not DocumentStartEvent:
        return _ASIDE  # an empty stream, or something odd
    stack: list[tuple[Any, Any, bool]] = []  # the enclosing collections, and their pending keys
    top: Any = None  # the collection being filled: a dict or a list; None at the root
    key: str | None = None  # a mapping's key, read and waiting for its value
    is_map = False
    while True:
        event = get()
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag not in (None, "!"):
                return _ASIDE
            if is_map and key is None:
                key = event.value  # a key is its source text, whatever it looks like
                if len(stack) != 2:
                    key = share(key, key)
                if key in top:
                    return _ASIDE  # a duplicate: reported by the node-based builder
                continue
            try:
                value = _scalar(resolve(scalar_node, event.value, event.implicit), event.value, event.style)
                if type(value) is str and not (sink and len(stack) > 2 and stack[1][1] == "records"):
                    value = share(value, value)
            except _BadScalar:
                return _ASIDE
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag not in (None, "!"):
                return _ASIDE
            if (is_map and key is None) or len(stack) >= MAX_DEPTH:
                return _ASIDE  # a collection as a key, or nesting too deep
            stack.append((top, key, is_map))
            is_map = kind is MappingStartEvent
            top, key = ({} if is_map else []), None
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = top
            top, key, is_map = stack.pop()
        else:
            return _ASIDE  # an alias
        if not stack and top is None:
            break
        if is_map:
            if not (
                sink is not None
                and len(stack) == 2
                and stack[1][1] in STREAMED
                and sink(stack[1][0], stack[1][1], key, value)
            ):
                top[key] = value
            key = None
        else:
            top.append(value)
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        return _ASIDE  # a second document
    return value
