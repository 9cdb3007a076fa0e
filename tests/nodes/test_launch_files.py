"""Launch files checked statically (no `launch` package here): installed executables, existing
parameter files, declared parameter keys with valid values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robot_rl.cli.launch_file import check_launch_file, read_launch_file

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def test_both_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} >= {"robot.launch.py", "sim.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path):
    assert check_launch_file(path) == []


def test_node_sets():
    sim = [(n.executable, n.name) for n in read_launch_file(REPO / "launch" / "sim.launch.py")]
    assert sim == [
        ("sim_robot", "sim_robot"),
        ("twin_operator", "twin_operator"),
        ("reward", "reward"),
        ("actor", "actor"),
    ]
    robot = [(n.executable, n.name) for n in read_launch_file(REPO / "launch" / "robot.launch.py")]
    assert robot == [
        ("camera", "camera_front"),
        ("camera", "camera_wrist"),
        ("teleop", "teleop"),
        ("reward", "reward"),
        ("actor", "actor"),
    ]


def _launch(tmp_path, executable="teleop", name="teleop", params="params.yaml"):
    path = tmp_path / "x.launch.py"
    path.write_text(
        "from launch_ros.actions import Node\n"
        "def generate_launch_description():\n"
        f"    return [Node(package='robot_rl', executable='{executable}', name='{name}',\n"
        f"                 parameters=[config('{params}')])]\n"
    )
    return path


def test_unknown_executable_is_reported(tmp_path):
    (tmp_path / "params.yaml").write_text("teleop:\n  ros__parameters: {}\n")
    problems = check_launch_file(_launch(tmp_path, executable="telep"), config_dir=tmp_path)
    assert len(problems) == 1 and "'telep' is not an installed console script" in problems[0]


def test_missing_parameter_file_is_reported(tmp_path):
    problems = check_launch_file(_launch(tmp_path, params="nope.yaml"), config_dir=tmp_path)
    assert len(problems) == 1 and "nope.yaml does not exist" in problems[0]


def test_undeclared_parameter_is_reported(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "teleop:\n  ros__parameters:\n    deadzone: 0.2\n    dead_zone: 0.2\n"
        "    events: {succes: 3}\n"
    )
    problems = check_launch_file(_launch(tmp_path), config_dir=tmp_path)
    assert len(problems) == 2
    assert (
        "'dead_zone' is not declared by teleop" in problems[0] and "'events.succes'" in problems[1]
    )


def test_out_of_range_value_is_reported(tmp_path):
    (tmp_path / "params.yaml").write_text("teleop:\n  ros__parameters:\n    deadzone: 1.5\n")
    problems = check_launch_file(_launch(tmp_path), config_dir=tmp_path)
    assert len(problems) == 1 and "deadzone" in problems[0] and "1.5" in problems[0]


def test_non_literal_node_is_refused(tmp_path):
    path = tmp_path / "x.launch.py"
    path.write_text("Node(package='robot_rl', executable=EXE, name='a')\n")
    assert "executable= must be a string literal" in check_launch_file(path)[0]


def test_check_imports_neither_nodes_nor_rclpy():
    # the parameter check runs in a child process: the CLI side stays free of the ROS nodes
    code = (
        "import sys\n"
        "from robot_rl.cli.launch_file import check_launch_file\n"
        f"assert check_launch_file({str(REPO / 'launch' / 'sim.launch.py')!r}) == []\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('nodes', 'rclpy'))\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_failed_parameter_check_is_reported(tmp_path, monkeypatch):
    from robot_rl.cli import launch_file

    (tmp_path / "params.yaml").write_text("teleop:\n  ros__parameters: {}\n")
    monkeypatch.setattr(launch_file, "PARAMETER_CHECK", "nodes.no_such_module")
    problems = check_launch_file(_launch(tmp_path), config_dir=tmp_path)
    assert len(problems) == 1
    assert "could not check parameters with `-m nodes.no_such_module`" in problems[0]
    assert "No module named nodes.no_such_module" in problems[0]
