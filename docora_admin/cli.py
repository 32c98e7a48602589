"""Flask CLI commands: `flask --app app migrate | demo-data | hash-password`."""
import json
from pathlib import Path

import click
from werkzeug.security import generate_password_hash

from . import db, runtime
from .services import demo_data


def init_app(app):
    @app.cli.command("migrate")
    def migrate_command():
        """Apply pending SQL migrations (safe to run twice)."""
        applied = db.migrate(runtime.settings().database_url)
        click.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))

    @app.cli.command("demo-data")
    @click.option("--seed", type=int, default=None, help="Make the data set repeatable.")
    @click.option("--repos-file", type=click.Path(exists=True, dir_okay=False),
                  help='JSON {"owner/name": git URL}: a live demo on these repositories.')
    @click.option("--receiver-url", help="Base URL of the demo receiver the apps post to.")
    @click.option("--receiver-config", type=click.Path(dir_okay=False),
                  help="Where to write the receiver's app keys and behaviours.")
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
                  default="var/receiver.json", show_default=True,
                  help="The demo receiver's config (scripts/run writes it there).")
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
                   "delivering again: they fail within a few minutes, then fix and retry")

    @app.cli.command("hash-password")
    @click.password_option()
    def hash_password_command(password):
        """Print a hash for ADMIN_PASSWORD_HASH."""
        click.echo(generate_password_hash(password))
