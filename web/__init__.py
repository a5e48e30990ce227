"""The HTTP API: ``create_app()`` is the one place the Flask app is assembled."""

from __future__ import annotations

from flask import Flask

from models.settings import Settings, configure, current_settings


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

    app = Flask(__name__)
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
