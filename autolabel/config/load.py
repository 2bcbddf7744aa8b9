"""Loading an ontology: YAML read safely (duplicate keys refused) and validated into the frozen
`Ontology` of `ontology.py`; every problem is reported at once, with the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autolabel.config.ontology import Ontology
from autolabel.config.validate import Validator
from autolabel.errors import OntologyError, UsageError, joined, shown

MAX_ALIASES = 100  # YAML aliases (*name) in one file: a few are handy, thousands are an alias bomb


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where present (160k prompts: ~1 s)


class _UniqueKeyLoader(_Base):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _check_aliases(text: str) -> None:
    """An alias bomb (a few hundred bytes of nested *aliases that expand to millions of nodes) is refused
    before anything is built from it: an alias may not name a collection that itself holds aliases, and
    a file holds at most MAX_ALIASES of them."""
    n, nested = 0, set()
    open_: list[tuple[str | None, bool]] = []  # (anchor, holds an alias) of each collection being read
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append((event.anchor, False))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, holds = open_.pop()
            if holds and anchor is not None:
                nested.add(anchor)
        elif isinstance(event, yaml.AliasEvent):
            n += 1
            if n > MAX_ALIASES or event.anchor in nested:
                why = f"more than {MAX_ALIASES} YAML aliases" if n > MAX_ALIASES else "YAML aliases of aliases"
                raise yaml.composer.ComposerError(
                    None, None, f"{why} (*name, an alias bomb): refused", event.start_mark
                )
            open_ = [(a, True) for a, _ in open_]


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {shown(key)}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {shown(key)} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(p: Path, error: type[UsageError] = OntologyError) -> Any:
    """A YAML file read safely: UTF-8, no duplicate keys, no alias bombs; problems raise `error` naming
    the file (and the line and column)."""
    try:
        text = p.read_text(encoding="utf-8")
        _check_aliases(text)
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise error(f"{p}: not a UTF-8 text file ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise error(f"{p}: invalid YAML{where}: {problem}", hint="check indentation and quoting") from None


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology file. Raises OntologyError naming the file and key."""
    p = Path(path)
    if not p.is_file():
        raise OntologyError(
            f"{p}: ontology file not found", hint="pass the path of a YAML file, e.g. ontologies/example.yaml"
        )
    return parse_ontology(read_yaml(p), source=str(p))


def parse_ontology(data: Any, source: str = "<memory>") -> Ontology:
    """Validate already-parsed YAML data. All problems are reported together in one OntologyError."""
    v = Validator(source)
    ont = v.ontology(data)
    if v.problems:
        raise OntologyError(
            joined(v.problems), hint="see the ontology format in README.md, or run `autolabel validate FILE`"
        )
    assert ont is not None
    return ont
