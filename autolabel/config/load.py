"""Loading an ontology: YAML read safely (duplicate keys refused) and validated into the frozen
`Ontology` of `ontology.py`; every problem is reported at once, with the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autolabel.config.ontology import Ontology
from autolabel.config.validate import Validator
from autolabel.errors import OntologyError


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology file. Raises OntologyError naming the file and key."""
    p = Path(path)
    if not p.is_file():
        raise OntologyError(
            f"{p}: ontology file not found", hint="pass the path of a YAML file, e.g. ontologies/example.yaml"
        )
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise OntologyError(f"{p}: not a UTF-8 text file ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise OntologyError(f"{p}: invalid YAML{where}: {problem}", hint="check indentation and quoting") from None
    return parse_ontology(data, source=str(p))


def parse_ontology(data: Any, source: str = "<memory>") -> Ontology:
    """Validate already-parsed YAML data. All problems are reported together in one OntologyError."""
    v = Validator(source)
    ont = v.ontology(data)
    if v.problems:
        first, *rest = v.problems
        msg = first if not rest else first + "".join(f"\n  {r}" for r in rest)
        raise OntologyError(msg, hint="see the ontology format in README.md, or run `autolabel validate FILE`")
    assert ont is not None
    return ont
