"""The pipeline's workers: broker setup first, then the stage actors.

Importing this package sets Dramatiq's global broker from the settings (a RabbitmqBroker or
the StubBroker) and declares the actors on it; the web process imports it to send messages.
"""

from actors.broker import broker  # noqa: I001  (the broker must exist before any actor is declared)
from actors.assemble import assemble
from actors.upload import upload
from actors.extract import extract
from actors.notify import deliver_webhook, notify
from actors.pipeline import publish_job

__all__ = ["broker", "assemble", "upload", "extract", "notify", "deliver_webhook", "publish_job"]
