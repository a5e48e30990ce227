"""Every table on ``Base.metadata``: import this before comparing or creating the schema."""

from models import delivery, endpoint, job, tenant, tokens, upload
from models.db import Base

__all__ = ["Base", "delivery", "endpoint", "job", "tenant", "tokens", "upload"]
