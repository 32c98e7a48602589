"""Scanning a checkout: every regular file except .git/ and symlinks, with its SHA-256; a file
that cannot be sent (a name that is not UTF-8, a file that cannot be read) is set aside with
the reason, on its own: the rest of the repository is delivered."""
import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

NOT_UTF8 = "file name is not valid UTF-8"


@dataclass(frozen=True)
class ScannedFile:
    path: str  # relative, with forward slashes
    sha: str
    size: int


@dataclass(frozen=True)
class SkippedFile:
    path: str  # relative, printable: bytes of a name that are not UTF-8 shown as \xNN
    reason: str


def scan(root):
    """([ScannedFile], [SkippedFile]) for the tree at `root`, each sorted by path."""
    root = Path(root)
    found, skipped = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git" and not os.path.islink(
            os.path.join(folder, d)))
        for name in files:
            full = os.path.join(folder, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            path = Path(full).relative_to(root).as_posix()
            try:
                path.encode("utf-8")  # os.walk gives undecodable bytes as lone surrogates
            except UnicodeEncodeError:
                skipped.append(SkippedFile(printable(path), NOT_UTF8))
                continue
            try:
                sha, size = _digest(full)
            except OSError as exc:
                skipped.append(SkippedFile(path, f"cannot be read: {exc.strerror or exc}"))
                continue
            found.append(ScannedFile(path, sha, size))
    return (sorted(found, key=lambda f: f.path), sorted(skipped, key=lambda f: f.path))


def _digest(full):
    digest, size = hashlib.sha256(), 0
    with open(full, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def printable(path):
    """A path from os.walk as a person can read it: what is UTF-8 as itself, other bytes as
    \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_content(root, path):
    return (Path(root) / path).read_bytes()


def encode(data):
    """(content, encoding): UTF-8 text as is, anything else as base64."""
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"
