"""The HTTP API: ``create_app()`` is the one place the Flask app is assembled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from models.settings import Settings, configure, current_settings


class App(Flask):
    """Flask, asking once per function whether it is a coroutine function.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and the view on every request
    (about 1 % of a status GET's CPU); the answer for a function never changes.
    """

    def __init__(self, import_name: str):
        super().__init__(import_name)
        self._plain: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if func in self._plain:
            return func
        made = super().ensure_sync(func)
        if made is func:
            self._plain.add(func)
        return made


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app on ``settings`` (default: the process's, from the environment).

    Importing the blueprints imports ``actors``, which sets the Dramatiq broker from the
    same settings, so the settings are fixed before that.
    """
    settings = configure(settings) if settings is not None else current_settings()

    from actors.storage import open_store
    from actors.url_guard import UrlGuard
    from web import (
        account,
        converters,
        cors,
        docs,
        errors,
        events,
        front,
        jobs,
        ops,
        page,
        ratelimit,
        service,
        tokens,
        tus,
        uploads,
    )
    from web.proxies import TrustedProxyFix

    app = App(__name__)
    app.config.update(
        CHUTE_URL_GUARD=UrlGuard(settings.webhook_allowed_hosts),
        # Werkzeug answers 413 before reading a body over this; chunk PUTs check their exact size.
        MAX_CONTENT_LENGTH=settings.max_request_size,
        JSON_SORT_KEYS=False,
    )
    errors.register(app)
    converters.register(app)
    app.register_blueprint(service.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(uploads.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(page.bp)
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    app.register_blueprint(tus.bp)
    app.register_blueprint(tokens.bp)
    cors.register(app)
    app.before_request(service.start_timer)
    app.after_request(service.record_request)
    app.register_blueprint(account.bp)
    app.before_request(ratelimit.limit_public)
    app.after_request(ratelimit.add_headers)
    if settings.behind_front:
        app.wsgi_app = front.PeerAddress(app.wsgi_app)  # type: ignore[method-assign]
    try:
        open_store(settings.storage_url).ensure_bucket()
    except Exception:
        app.logger.warning("object store not reachable at start; /readyz will say so", exc_info=True)
    return app
