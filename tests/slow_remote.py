"""A git remote that is slow to serve, for tests/test_fleet.py and bench/fleet.py (imports
nothing of the project, so a bench can use it without tests/conftest.py's environment)."""


def slow_remote(tmp_path, seconds):
    """Every fetch and clone from the remote waits `seconds` before it gets its pack. git
    runs this hook only from protected configuration, and a local upload-pack does not get the
    command line's: the consumer's global configuration is a file of the test's own."""
    hook = tmp_path / "slow-pack-objects"
    hook.write_text(f'#!/bin/sh\nsleep {seconds}\nexec "$@"\n')
    hook.chmod(0o755)
    config = tmp_path / "slow-remote.gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    return {"GIT_CONFIG_GLOBAL": str(config)}
