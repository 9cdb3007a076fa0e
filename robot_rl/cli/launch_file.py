"""Read this package's ROS 2 launch files without `launch` installed, and check them.

The launch files (launch/*.launch.py) are plain: one `Node(package=..., executable=...,
name=..., parameters=[config("<file>.yaml")])` per node with string literals, so their node set
can be read from the syntax tree. `robot-rl bringup` starts exactly that node set, and CI checks
that every executable is an installed console script of robot_rl, every parameter file exists,
and every parameter key in it is one the node declares (the fields of the module's PARAMETERS
dataclass). Node modules are only named here: the parameter check runs in a child process
(`python -m nodes.params`), so the core stays free of rclpy and of the node modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "robot_rl"
PARAMETER_CHECK = "nodes.params"  # run as `python -m`: checks parameter files against the nodes


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
    """The dotted module path behind a console script; ValueError when it is not one of ours."""
    scripts = console_scripts() if scripts is None else scripts
    if executable not in scripts:
        raise ValueError(
            f"executable {executable!r} is not an installed console script of {PACKAGE} "
            f"(installed: {sorted(scripts)})"
        )
    return scripts[executable].split(":")[0]


def check_parameters(requests: list[dict[str, str]]) -> list[list[str]]:
    """Problems per request {module, executable, node, file}, found by `python -m nodes.params`."""
    cmd = [sys.executable, "-m", PARAMETER_CHECK]
    proc = subprocess.run(cmd, input=json.dumps(requests), capture_output=True, text=True)
    if proc.returncode != 0:
        error = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        what = (
            f"could not check parameters with `{' '.join(cmd[1:])}` (exit status "
            f"{proc.returncode}: {error}); is ROS 2 (rclpy) installed and sourced?"
        )
        return [[what] for _ in requests]
    return json.loads(proc.stdout)


def check_launch_file(
    path: str | Path,
    config_dir: str | Path = REPO / "config",
    params_file: str | Path | None = None,
) -> list[str]:
    """Every problem found in a launch file, as readable lines (empty when it is fine).

    `params_file` checks the nodes against that parameter file instead of the ones the launch
    file names (what `robot-rl bringup --config` does).
    """
    try:
        nodes = read_launch_file(path)
    except (SyntaxError, ValueError) as exc:
        return [str(exc)]
    scripts = console_scripts()
    problems, requests, wheres = [], [], []
    for node in nodes:
        where = f"{path}:{node.line} ({node.name})"
        try:
            module = node_module(node.executable, scripts)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        files = (
            [Path(params_file)]
            if params_file
            else [Path(config_dir) / n for n in node.parameter_files]
        )
        for file in files:
            if not file.is_file():
                problems.append(f"{where}: parameter file {file} does not exist")
                continue
            requests.append(
                {
                    "module": module,
                    "executable": node.executable,
                    "node": node.name,
                    "file": str(file),
                }
            )
            wheres.append(where)
    if requests:
        for where, found in zip(wheres, check_parameters(requests)):
            problems += [f"{where}: {line}" for line in found]
    return problems
