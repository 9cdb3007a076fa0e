"""Read this package's ROS 2 launch files without `launch` installed, and check them.

The launch files (launch/*.launch.py) are plain: one `Node(package=..., executable=..., name=...,
parameters=[config("<file>.yaml")])` per node with string literals, so their node set can be read
from the syntax tree. `robot-rl bringup` starts exactly that node set, and CI checks that every
executable is an installed console script of robot_rl, every parameter file exists, and every
parameter key in it is one the node declares (the fields of the module's PARAMETERS dataclass).
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "robot_rl"


@dataclass
class LaunchNode:
    executable: str
    name: str
    parameter_files: list[str]  # names under config/
    line: int


def read_launch_file(path: str | Path) -> list[LaunchNode]:
    """The `Node(...)` actions of a launch file, in order; ValueError names what is not literal."""
    path = Path(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = []
    for call in ast.walk(tree):
        if not (
            isinstance(call, ast.Call)
            and getattr(call.func, "id", getattr(call.func, "attr", None)) == "Node"
        ):
            continue
        kw = {k.arg: k.value for k in call.keywords}
        where = f"{path}:{call.lineno}"
        fields = {}
        for key in ("package", "executable", "name"):
            if not isinstance(kw.get(key), ast.Constant) or not isinstance(kw[key].value, str):
                raise ValueError(f"{where}: Node {key}= must be a string literal")
            fields[key] = kw[key].value
        if fields["package"] != PACKAGE:
            raise ValueError(f"{where}: Node package {fields['package']!r} is not {PACKAGE!r}")
        files = []
        for item in getattr(kw.get("parameters"), "elts", []):
            if not (
                isinstance(item, ast.Call)
                and getattr(item.func, "id", None) == "config"
                and item.args
                and isinstance(item.args[0], ast.Constant)
            ):
                raise ValueError(f'{where}: parameters must be config("<file>.yaml") entries')
            files.append(item.args[0].value)
        nodes.append(LaunchNode(fields["executable"], fields["name"], files, call.lineno))
    if not nodes:
        raise ValueError(f"{path}: no Node(...) actions found")
    return nodes


def console_scripts() -> dict[str, str]:
    """Installed console scripts of the robot_rl distribution: name -> 'module:function'."""
    from importlib.metadata import distribution

    return {
        ep.name: ep.value
        for ep in distribution(PACKAGE).entry_points
        if ep.group == "console_scripts"
    }


def node_module(executable: str, scripts: dict[str, str] | None = None) -> str:
    scripts = console_scripts() if scripts is None else scripts
    if executable not in scripts:
        raise ValueError(
            f"executable {executable!r} is not an installed console script of {PACKAGE} "
            f"(installed: {sorted(scripts)})"
        )
    return scripts[executable].split(":")[0]


def check_launch_file(
    path: str | Path,
    config_dir: str | Path = REPO / "config",
    params_file: str | Path | None = None,
) -> list[str]:
    """Every problem found in a launch file, as readable lines (empty when it is fine).

    `params_file` checks the nodes against that parameter file instead of the ones the launch
    file names (what `robot-rl bringup --config` does).
    """
    from controllers.config import ConfigError
    from nodes.params import config_from_file, node_parameters, parameter_names

    problems = []
    try:
        nodes = read_launch_file(path)
    except (SyntaxError, ValueError) as exc:
        return [str(exc)]
    scripts = console_scripts()
    for node in nodes:
        where = f"{path}:{node.line} ({node.name})"
        try:
            module = importlib.import_module(node_module(node.executable, scripts))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        declared = parameter_names(module.PARAMETERS)
        for file in (
            [Path(params_file)]
            if params_file
            else [Path(config_dir) / n for n in node.parameter_files]
        ):
            if not file.is_file():
                problems.append(f"{where}: parameter file {file} does not exist")
                continue
            unknown = sorted(set(node_parameters(str(file), node.name)) - declared)
            for key in unknown:
                problems.append(
                    f"{where}: {file.name}: parameter {key!r} is not declared by {node.executable} "
                    f"(declared: {sorted(declared)})"
                )
            if not unknown:
                try:
                    config_from_file(module.PARAMETERS, str(file), node.name)
                except ConfigError as exc:
                    problems.append(f"{where}: {exc}")
    return problems
