"""Entry point for `flask --app app`, `gunicorn 'app:create_app()'` and `huey_consumer app.huey`."""
from docora_admin import create_app  # noqa: F401
from docora_admin.tasks import huey  # noqa: F401  (imports every task too)
