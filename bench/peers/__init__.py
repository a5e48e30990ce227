"""The peers chute is measured against: what a user would otherwise write or run.

- :mod:`bench.peers.celery_app` and :mod:`bench.peers.flask_app`: the tutorials' Flask +
  Celery + Redis script doing chute's four stages (sha256 of the staged file, put to S3 with
  minio, Pillow derivatives, an HMAC-signed webhook), written the way those tutorials write it.
- :mod:`bench.peers.compare`: ``python -m bench peers``, chute and the peer side by side.

This package's ``__init__`` imports nothing, so the peer's processes load only what they use.
"""
