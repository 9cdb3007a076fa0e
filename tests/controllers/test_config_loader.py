"""The typed config loader every package uses: conversions and errors that name the key."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from controllers.config import ConfigError, from_dict, load_yaml, to_dict


@dataclass
class Inner:
    gains: tuple[float, float, float] = (1.0, 2.0, 3.0)
    mode: Literal["fast", "safe"] = "safe"

    def __post_init__(self):
        if min(self.gains) <= 0:
            raise ConfigError(f"inner.gains must be > 0, got {self.gains}")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate_hz: float = 10.0
    steps: int = 5
    label: str | None = None
    names: list[str] = field(default_factory=list)


def test_nested_conversion_and_round_trip():
    cfg = from_dict(
        Outer, {"inner": {"gains": [1, 2, 4], "mode": "fast"}, "rate_hz": 20, "names": ["a"]}
    )
    assert cfg.inner.gains == (1.0, 2.0, 4.0) and isinstance(cfg.inner.gains[0], float)
    assert cfg.inner.mode == "fast" and cfg.rate_hz == 20.0 and cfg.names == ["a"]
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"inner": {"gains": [1, 2]}}, "inner.gains: expected 3 values"),
        ({"rate": 1}, "unknown key(s) ['rate']"),
        ({"rate_hz": "fast"}, "rate_hz: expected a number"),
        ({"steps": 2.5}, "steps: expected an integer"),
        ({"steps": True}, "steps: expected an integer"),
        ({"inner": {"mode": "turbo"}}, "inner.mode: 'turbo' is not one of"),
        ({"inner": {"gains": [1, -2, 3]}}, "inner.gains must be > 0"),
        ({"inner": [1, 2]}, "inner: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert fragment in str(err.value)


def test_load_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(listing)
