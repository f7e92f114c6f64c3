"""YAML loading that keeps positions and closes YAML 1.1's traps.

* Only ``true``/``false`` are booleans: ``NO`` (Norway), ``yes``, ``on`` stay strings.
* Integers are decimal without a leading zero: ``010`` stays the string "010", never 8;
  ``1:30`` stays a string (no base-60).
* No timestamps, no merge keys, no custom tags.
* Mapping keys are always strings (their source text) and a duplicate key is an error.

Every value and key gets a 1-based (line, column), looked up by its path in the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

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

    def where(self, path: Path, key: bool = False) -> tuple[int, int]:
        """Position of the value (or key) at `path`, else of its nearest ancestor."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.values:
                return self.values[path]
        return (1, 1)

    def error(self, path: Path, message: str, key: bool = False) -> ZoneError:
        line, col = self.where(path, key)
        return ZoneError(self.file, line, col, path, message)


class YAMLProblem(Exception):
    def __init__(self, error: ZoneError):
        super().__init__(str(error))
        self.error = error


def load(text: str, file: str) -> Document:
    """Parse one YAML document; raise YAMLProblem with a positioned error."""
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
    tag, text = node.tag, node.value
    if tag == _STR or (node.style and tag != _NULL and tag in (_INT, _FLOAT, _BOOL)):
        return text
    # An explicit tag (`!!int 0x10`) bypasses the resolvers above, so its text is checked here.
    try:
        if tag == _INT:
            return int(text)
        if tag == _FLOAT:
            return float(text)
    except ValueError:
        what = "an integer" if tag == _INT else "a number"
        raise YAMLProblem(doc.error(path, f"{text!r} is not {what}")) from None
    if tag == _BOOL:
        if text.lower() not in ("true", "false"):
            raise YAMLProblem(doc.error(path, f"{text!r} is not a boolean (use true or false)"))
        return text.lower() == "true"
    if tag == _NULL:
        return None
    raise YAMLProblem(doc.error(path, f"unsupported YAML tag {tag!r}"))
