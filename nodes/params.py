"""ROS parameters <-> typed dataclass configs.

Every node keeps its settings in one dataclass whose fields all have defaults. The node declares
one ROS parameter per (flattened, dot-separated) field, reads them back and builds the dataclass
with `controllers.config.from_dict`, so range checks and error messages are the same as for YAML
configs. The static launch check (robot_rl/cli/launch_file.py) runs this module as
`python -m nodes.params` to check parameter files against the nodes' declared parameters.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from controllers.config import ConfigError, from_dict, load_yaml, to_dict

T = TypeVar("T")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values (ROS array parameters)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def parameter_names(cls: type) -> set[str]:
    """The ROS parameter names a node with config dataclass `cls` declares."""
    return set(flatten(to_dict(cls())))


def declare_config(node: Any, cls: type[T]) -> T:
    """Declare one ROS parameter per config field on `node` and build the validated config."""
    from rcl_interfaces.msg import ParameterDescriptor

    defaults = flatten(to_dict(cls()))
    # dynamic typing: ROS must not refuse a YAML `1` for a float field; from_dict checks types.
    descriptor = ParameterDescriptor(dynamic_typing=True)
    values = {}
    for name, default in defaults.items():
        # ROS cannot infer an element type from an empty list: declare it untyped
        node.declare_parameter(name, None if default == [] else default, descriptor)
        value = node.get_parameter(name).value
        if value is None:
            value = default
        elif not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
            value = list(value)  # arrays come back as array.array
        values[name] = value
    return from_dict(cls, unflatten(values), node.get_name())


def node_parameters(params_file: str, node_name: str) -> dict[str, Any]:
    """The `ros__parameters` that apply to `node_name` in a ROS 2 parameter YAML file (flattened
    names): the `/**` wildcard section first, then the node's own section, as ROS merges them."""
    data = load_yaml(params_file)
    merged: dict[str, Any] = {}
    for key in ("/**", f"/{node_name}", node_name):
        if key in data:
            section = data[key]
            if not isinstance(section, dict) or "ros__parameters" not in section:
                raise ConfigError(f"{params_file}: '{key}' has no 'ros__parameters' mapping")
            merged.update(flatten(section["ros__parameters"] or {}))
    return merged


def config_from_file(cls: type[T], params_file: str, node_name: str) -> T:
    """Build a node's config from a ROS parameter file without ROS (bring-up, static checks)."""
    return from_dict(
        cls, unflatten(node_parameters(params_file, node_name)), f"{params_file}:{node_name}"
    )


def check_parameter_file(cls: type, params_file: str, node_name: str, executable: str) -> list[str]:
    """Problems of one node's section of a parameter file: undeclared keys, else invalid values."""
    declared = parameter_names(cls)
    try:
        unknown = sorted(set(node_parameters(params_file, node_name)) - declared)
        if not unknown:
            config_from_file(cls, params_file, node_name)
    except ConfigError as exc:
        return [str(exc)]
    return [
        f"{Path(params_file).name}: parameter {key!r} is not declared by {executable} "
        f"(declared: {sorted(declared)})"
        for key in unknown
    ]


def main() -> int:
    """Requests [{module, executable, node, file}] as JSON on stdin; problem lists on stdout."""
    problems = []
    for request in json.load(sys.stdin):
        module = importlib.import_module(request["module"])
        problems.append(
            check_parameter_file(
                module.PARAMETERS, request["file"], request["node"], request["executable"]
            )
        )
    print(json.dumps(problems))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
