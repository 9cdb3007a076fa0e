"""CURVE key files: generation (`robot-rl keys generate`) and loading with clear errors.

Layout written by `generate(directory)`:
    learner.key, learner.key_secret    the learner's certificate (public / secret)
    actor.key, actor.key_secret        the actors' certificate
    authorized/actor.key               public keys the learner accepts (more files admit more)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth


@dataclass(frozen=True)
class ServerKeys:
    """What the learner needs: its secret certificate and the folder of admitted public keys."""

    secret_file: Path
    authorized_dir: Path


@dataclass(frozen=True)
class ClientKeys:
    """What an actor needs: its secret certificate and the learner's public key."""

    secret_file: Path
    server_public_file: Path


def generate(directory: str | Path, force: bool = False) -> dict[str, Path]:
    """Create learner and actor certificates in `directory`; refuse to overwrite unless `force`."""
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support")
    directory = Path(directory)
    existing = [
        p for p in (directory / "learner.key_secret", directory / "actor.key_secret") if p.exists()
    ]
    if existing and not force:
        raise FileExistsError(
            f"key files already exist: {', '.join(map(str, existing))} (use --force to replace)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    learner_public, learner_secret = zmq.auth.create_certificates(directory, "learner")
    actor_public, actor_secret = zmq.auth.create_certificates(directory, "actor")
    authorized = directory / "authorized"
    authorized.mkdir(exist_ok=True)
    shutil.copy(actor_public, authorized / "actor.key")
    for secret in (learner_secret, actor_secret):
        Path(secret).chmod(0o600)
    return {
        "learner_secret": Path(learner_secret),
        "learner_public": Path(learner_public),
        "actor_secret": Path(actor_secret),
        "actor_public": Path(actor_public),
        "authorized": authorized,
    }


def server_keys(directory: str | Path) -> ServerKeys:
    directory = Path(directory)
    return ServerKeys(directory / "learner.key_secret", directory / "authorized")


def client_keys(directory: str | Path) -> ClientKeys:
    directory = Path(directory)
    return ClientKeys(directory / "actor.key_secret", directory / "learner.key")


def load_secret(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) from a `.key_secret` certificate file, or an error naming the file."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"CURVE secret key file not found: {path} (create keys with `robot-rl keys generate`)"
        )
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise ValueError(f"{path} holds no secret key; pass the .key_secret file")
    return public, secret


def load_public(path: Path) -> bytes:
    if not Path(path).is_file():
        raise FileNotFoundError(f"CURVE public key file not found: {path}")
    public, _ = zmq.auth.load_certificate(path)
    return public
