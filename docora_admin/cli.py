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

    @app.cli.command("hash-password")
    @click.password_option()
    def hash_password_command(password):
        """Print a hash for ADMIN_PASSWORD_HASH."""
        click.echo(generate_password_hash(password))
