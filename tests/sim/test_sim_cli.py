"""`robot-rl demo --expert-only` and `bench sim --json` run the twin and print what they promise."""

import json

from robot_rl.cli import main


def test_demo_expert_only_prints_success_rate(capsys):
    assert main(["demo", "--expert-only", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "pick_cube" in out and "2/2 randomised episodes succeeded" in out


def test_bench_sim_prints_one_json_object(capsys):
    assert (
        main(
            [
                "bench",
                "sim",
                "--json",
                "--steps",
                "10",
                "--image-steps",
                "3",
                "--ticks",
                "50",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    for key in (
        "env_steps_per_s",
        "image_env_steps_per_s",
        "realtime_factor",
        "physics_hz",
        "control_hz",
        "controller_tick_us",
    ):
        assert result[key] > 0, key
    assert result["physics_hz"] == 1000.0 and result["control_hz"] == 10.0
