"""`robot-rl keys generate`: key files a learner and its actors can load."""

from __future__ import annotations

import argparse
import stat

import pytest

from robot_rl.cli import keys as keys_cli
from robot_rl.transport import keys


def _run(argv):
    parser = argparse.ArgumentParser()
    keys_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_generate_writes_loadable_keys_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "keys"
    assert _run(["keys", "generate", "--out", str(out)]) == 0
    public, secret = keys.load_secret(keys.server_keys(out).secret_file)
    assert len(public) == 40 and len(secret) == 40  # Z85-encoded 32-byte keys
    assert keys.load_public(keys.client_keys(out).server_public_file) == public
    assert (out / "authorized" / "actor.key").is_file()
    assert stat.S_IMODE((out / "actor.key_secret").stat().st_mode) == 0o600
    with pytest.raises(SystemExit, match="already exist"):
        _run(["keys", "generate", "--out", str(out)])
    assert _run(["keys", "generate", "--out", str(out), "--force"]) == 0
    assert keys.load_secret(out / "learner.key_secret")[0] != public


def test_missing_key_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="robot-rl keys generate"):
        keys.load_secret(tmp_path / "nope.key_secret")
