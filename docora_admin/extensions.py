"""Extension objects shared by views; initialised in create_app()."""
from flask_htmx import HTMX

htmx = HTMX()
