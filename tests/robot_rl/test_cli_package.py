"""The installed package: the `robot-rl` command and the ROS 2 package metadata."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from robot_rl.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    sub_actions = [a for a in build_parser()._actions if a.dest == "command"]
    for name in sub_actions[0].choices:
        assert name in out


def test_every_subcommand_has_help():
    parser = build_parser()
    commands = [a for a in parser._actions if a.dest == "command"][0].choices
    for name, sub in commands.items():
        assert sub.format_help().strip(), name


def test_package_xml_is_an_ament_python_format3_package():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "robot_rl"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "std_srvs"} <= depends
    assert (ROOT / "resource" / "robot_rl").is_file()


def test_console_scripts_go_to_lib_robot_rl_for_ros2_run():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/robot_rl" in cfg
    assert "install_scripts=$base/lib/robot_rl" in cfg
