"""YAML loading that keeps line numbers and expands ``${VAR}`` / ``${VAR:-default}``.

Environment variables are expanded inside scalar values after parsing, so a value can never
change the structure of the document and every line number stays the one the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from collections.abc import Mapping

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path = tuple[str | int, ...]


class YamlSourceError(ValueError):
    """A document that is not valid YAML, or uses an unset variable without a default."""


@dataclass
class YamlDocument:
    """A parsed document and the line (1-based) where each dotted path starts."""

    data: object
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """Returns the line of ``path`` or of its nearest ancestor present in the document."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Expands ``${VAR}`` and ``${VAR:-default}``; an unset ``${VAR}`` becomes ``""``."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            return default if default is not None else ""
        return value

    return _VAR.sub(substitute, text)


def load_yaml(text: str, source: str, env: Mapping[str, str] | None = None) -> YamlDocument:
    """Parses one YAML document, expanding variables in scalars and recording line numbers."""
    environ = {} if env is None else env
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc = YamlDocument(data=None, source=source)
        if node is None:
            return doc
        _walk(loader, node, (), doc.lines, environ)
        doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise YamlSourceError(f"{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(f"{source}: {exc}") from None
    finally:
        loader.dispose()


def _walk(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    env: Mapping[str, str],
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(loader, value_node, (*path, key), lines, env)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(loader, item, (*path, index), lines, env)
    elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
        node.value = expand_vars(node.value, env)
        # Re-resolve the tag so `${PORT:-4317}` becomes an int where YAML would make one,
        # unless the user quoted it. An unquoted variable that expands to nothing stays an
        # empty string: `name: ${NODE_NAME:-}` means "no name", never YAML's null (which is
        # what a Helm `toYaml` or a hand-written file would otherwise turn it into).
        if node.style is None and node.value != "":
            node.tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
