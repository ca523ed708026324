"""Load the YAML config and report every problem with its key path and line number."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_ext.config.instance import default_state_dir
from edge_ext.config.models import Config
from edge_ext.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.message}"


# Keys that were replaced: refused, with the key to use instead.
REPLACED = {
    ("cache", "redis_url"): "replaced by the top-level redis section (redis.url, or redis.cache for a Redis of the "
                            "cache's own)",
    ("routing", "redis_url"): "replaced by the top-level redis section (redis.url): breakers are shared through it",
    ("budgets", "redis_url"): "replaced by the top-level redis section (redis.url): spend is shared through it",
    ("auth", "redis_url"): "replaced by auth.redis_keys: true, with the top-level redis section (redis.url)",
}


class ConfigInvalid(ConfigError):
    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    # For an unknown key, point at the key itself.
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _instance_defaults(data: dict[str, Any], path: str | Path | None) -> None:
    """Give a config file without a state directory or socket directory its own one."""
    processor = data.get("processor")
    if processor is None:
        processor = data["processor"] = {}
    if not isinstance(processor, dict) or processor.get("state_dir"):
        return
    address = processor.get("address")
    if isinstance(address, str) and address.startswith("unix:"):
        return  # the socket directory is the instance's directory
    processor["state_dir"] = default_state_dir(path)


def parse_config(text: str, source: str = "<config>", path: str | Path | None = None) -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigInvalid(source, [Problem("(yaml)", line, str(getattr(exc, "problem", exc)))]) from exc
    if not isinstance(data, dict):
        raise ConfigInvalid(source, [Problem("(top)", 1, "the config must be a YAML mapping")])
    if path is not None:
        _instance_defaults(data, path)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = ".".join(str(p) for p in loc) or "(top)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = REPLACED.get(loc, "unknown key")
            problems.append(Problem(path, _line_of(node, loc), message))
        raise ConfigInvalid(source, problems) from exc


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(str(p), [Problem("(file)", None, exc.strerror or str(exc))]) from exc
    return parse_config(text, str(p), p)
