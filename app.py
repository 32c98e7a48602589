"""Entry point for `flask --app app`, `gunicorn 'app:create_app()'` and `huey_consumer app.huey`."""
from docora_admin import create_app  # noqa: F401
from docora_admin.consumer import huey  # noqa: F401  (every task, and the consumer's start-up)
