"""gunicorn's target: ``web.wsgi:app``."""

from web import create_app

app = create_app()
