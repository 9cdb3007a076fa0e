"""ament_python / pip entry point for the robot_rl distribution (all top-level packages)."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
PACKAGES = ("robot_rl", "controllers", "sim", "calibration", "nodes")


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


setup(
    name="robot_rl",
    version="0.1.0",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, f"{name}.*")]),
    package_data={"sim": ["assets/*.xml", "assets/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/robot_rl"]),
        ("share/robot_rl", ["package.xml"]),
        ("share/robot_rl/launch", glob("launch/*.py")),
        ("share/robot_rl/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=_requirements(),
    python_requires=">=3.10",
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "robot-rl = robot_rl.cli:main",
            "camera = nodes.camera:main",
            "teleop = nodes.teleop:main",
            "sim_robot = nodes.sim_robot:main",
            "actor = nodes.actor:main",
            "reward = nodes.reward:main",
            "tracker = nodes.tracker:main",
            "twin_operator = nodes.twin_operator:main",
        ],
    },
)
