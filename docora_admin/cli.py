"""Flask CLI commands: `flask --app app migrate | demo-data | hash-password`."""
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
    def demo_data_command(seed):
        """Fill an empty database with demo apps, repositories and failures."""
        created = demo_data.load_if_empty(runtime.settings().encryption_key, seed)
        click.echo(f"demo data: created {created} links" if created
                   else "demo data: database already has apps, left as it is")

    @app.cli.command("hash-password")
    @click.password_option()
    def hash_password_command(password):
        """Print a hash for ADMIN_PASSWORD_HASH."""
        click.echo(generate_password_hash(password))
