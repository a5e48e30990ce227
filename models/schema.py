"""Every table on ``Base.metadata``: import this before comparing or creating the schema."""

from models import cleanup, delivery, endpoint, job, tenant, tokens, upload
from models.db import Base

__all__ = ["Base", "cleanup", "delivery", "endpoint", "job", "tenant", "tokens", "upload"]
