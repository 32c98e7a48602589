"""Scanning a checkout: every regular file except .git/ and symlinks, with its SHA-256."""
import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScannedFile:
    path: str  # relative, with forward slashes
    sha: str
    size: int


def scan(root):
    """[ScannedFile] for the tree at `root`, sorted by path."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git" and not os.path.islink(
            os.path.join(folder, d)))
        for name in files:
            full = os.path.join(folder, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            digest = hashlib.sha256()
            with open(full, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            found.append(ScannedFile(Path(full).relative_to(root).as_posix(),
                                     digest.hexdigest(), os.path.getsize(full)))
    return sorted(found, key=lambda f: f.path)


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
