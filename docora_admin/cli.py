"""Flask CLI commands: `flask --app app migrate | demo-data | hash-password | users …`."""
import functools
import getpass
import json
import os
import sys
from pathlib import Path

import click
import psycopg
from flask.cli import AppGroup

from . import db, db_roles, passwords, runtime
from .errors import ApiError
from .roles import ROLES
from .services.team import accounts, audit
from .services.apps import demo_data


def init_app(app):
    @app.cli.command("migrate")
    def migrate_command():
        """Apply pending SQL migrations (safe to run twice), as DATABASE_OWNER_URL when set;
        then make the app's role (DATABASE_APP_ROLE) and its grants, and store the audit
        retention."""
        settings = runtime.settings()
        owner_url = os.environ.get("DATABASE_OWNER_URL") or settings.database_url
        applied = db.migrate(owner_url)
        click.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
        with psycopg.connect(owner_url, autocommit=True) as conn:
            if os.environ.get("DATABASE_OWNER_URL"):
                role = db_roles.ensure_app_role(
                    conn, os.environ.get("DATABASE_APP_ROLE") or db_roles.DEFAULT_ROLE,
                    os.environ.get("DATABASE_APP_PASSWORD"), settings.audit_retention_days)
                click.echo(f"role {role}: the app's, SELECT and INSERT only on the audit trail")
            else:
                db_roles.store_retention(conn, settings.audit_retention_days)
        changed = accounts.sync_environment_account(runtime.settings())
        if changed:
            click.echo(f"account {runtime.settings().admin_username}: {', '.join(changed)}")

    @app.cli.command("demo-data")
    @click.option("--seed", type=int, default=None, help="Make the data set repeatable.")
    @click.option("--repos-file", type=click.Path(exists=True, dir_okay=False),
                  help='JSON {"owner/name": git URL}: a live demo on these repositories.')
    @click.option("--receiver-url", help="Base URL of the demo receiver the apps post to.")
    @click.option("--receiver-config", type=click.Path(dir_okay=False),
                  help="Where to write the receiver's app keys and behaviours.")
    @_migrated
    def demo_data_command(seed, repos_file, receiver_url, receiver_config):
        """Fill an empty database with demo apps, repositories and failures."""
        urls = json.loads(Path(repos_file).read_text()) if repos_file else None
        created, receiver = demo_data.load_if_empty(
            runtime.settings().encryption_key, seed, repository_urls=urls,
            receiver_url=receiver_url)
        if created and receiver_config:
            path = Path(receiver_config)
            path.write_text(json.dumps(receiver, indent=2))
            path.chmod(0o600)  # holds the demo apps' signing keys
        click.echo(f"demo data: created {created} links" if created
                   else "demo data: database already has apps, left as it is")

    @app.cli.command("demo-break")
    @click.option("--receiver-config", type=click.Path(dir_okay=False),
                  default=lambda: os.path.join(os.environ.get("DOCORA_VAR_DIR") or "var",
                                               "receiver.json"),
                  show_default="var/receiver.json, or under DOCORA_VAR_DIR",
                  help="The demo receiver's config (scripts/run writes it there).")
    @_migrated
    def demo_break_command(receiver_config):
        """Break the demo's broken apps again (after `python -m devtools.receiver fix`): their
        webhooks fail again and their links deliver again, so they land in the failed list."""
        path = Path(receiver_config)
        if not path.exists():
            raise click.ClickException(f"{path} not found: the live demo (scripts/run with "
                                       "devtools/) writes it on an empty database")
        config = json.loads(path.read_text())
        modes = demo_data.broken_demo_apps()
        for app_id, mode in modes.items():
            if app_id in config:
                config[app_id]["mode"] = mode
        # The receiver reads its file on every request: broken before any link delivers again.
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)  # holds the demo apps' signing keys
        queued = demo_data.redeliver(modes)
        kinds = ", ".join(sorted(set(modes.values()))) or "none found"
        click.echo(f"demo: {len(modes)} app(s) broken again ({kinds}); {queued} link(s) "
                   "delivering again: they fail within a minute or two (scripts/run's settings), "
                   "then fix and retry")

    @app.cli.command("hash-password")
    @click.password_option()
    def hash_password_command(password):
        """Print an argon2id hash for ADMIN_PASSWORD_HASH."""
        if (problem := passwords.problem(password)) is not None:
            raise click.ClickException(problem)
        click.echo(passwords.hash_password(password))

    @app.cli.command("prune-audit")
    @_migrated
    def prune_audit_command():
        """Delete audit events older than AUDIT_RETENTION_DAYS now (the worker does it hourly)."""
        click.echo(f"pruned {audit.prune()} audit event(s)")

    app.cli.add_command(users)
    app.cli.add_command(audit_commands)


def _actor():
    # Who ran the command, as the audit trail shows it.
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _read_password():
    """From the terminal (asked twice), or the first line of stdin when it is not a terminal
    (scripts: `echo "$PW" | flask --app app users add …`)."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def _migrated(command):
    """A command that needs the schema says so in one line on a database not migrated yet."""
    @functools.wraps(command)
    def checked(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except psycopg.errors.UndefinedTable:
            raise click.ClickException(
                "the database is not migrated yet: run `flask --app app migrate` "
                "(scripts/flask migrate) first") from None
    return checked


def _run(change):
    try:
        return change()
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


@click.group("users", cls=AppGroup, help="Console accounts: add, list, set-role, disable, enable, "
                           "set-password.")
def users():
    pass


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@_migrated
def users_add(username, role):
    """Add an account (the password is asked for, or read from stdin)."""
    _run(lambda: accounts.check_username(username))
    password = _read_password()
    _run(lambda: accounts.create(username, role, password, actor=_actor()))
    click.echo(f"added {username} ({role})")


@users.command("list")
@_migrated
def users_list():
    """Every account with its role and state."""
    rows = accounts.list_accounts()
    width = max([len(r["username"]) for r in rows] + [8])
    click.echo(f"{'USERNAME':<{width}}  {'ROLE':<8}  {'STATE':<8}  CREATED (UTC)")
    for row in rows:
        state = "disabled" if row["disabled_at"] else "active"
        note = "  (ADMIN_USERNAME)" if row["from_environment"] else ""
        click.echo(f"{row['username']:<{width}}  {row['role']:<8}  {state:<8}  "
                   f"{row['created_at']:%Y-%m-%d %H:%M}{note}")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@_migrated
def users_set_role(username, role):
    """Change an account's role (its sessions end)."""
    _run(lambda: accounts.set_role(username, role, actor=_actor()))
    click.echo(f"{username} is now {role}; its sessions were ended")


@users.command("disable")
@click.argument("username")
@_migrated
def users_disable(username):
    """Disable an account; its sessions end now."""
    _run(lambda: accounts.disable(username, actor=_actor()))
    click.echo(f"{username} is disabled; its sessions were ended")


@users.command("enable")
@click.argument("username")
@_migrated
def users_enable(username):
    """Let a disabled account log in again."""
    _run(lambda: accounts.enable(username, actor=_actor()))
    click.echo(f"{username} is enabled")


@users.command("set-password")
@click.argument("username")
@_migrated
def users_set_password(username):
    """Give an account a new password (asked for, or read from stdin); its sessions end."""
    _run(lambda: accounts.get(username))
    password = _read_password()
    _run(lambda: accounts.set_password(username, password, actor=_actor()))
    click.echo(f"{username} has a new password; its sessions were ended")


@click.group("audit", cls=AppGroup, help="The audit trail: verify its hash chain.")
def audit_commands():
    pass


@audit_commands.command("verify")
@_migrated
def audit_verify():
    """Walk the audit trail's hash chain; exit 1 at the first event that breaks it."""
    checked, broken = audit.verify()
    if broken is None:
        click.echo(f"audit trail intact: {checked:,} event(s), every hash chained")
        return
    event_id, problem = broken
    click.echo(f"audit trail broken at event {event_id}: {problem}", err=True)
    sys.exit(1)
