"""A text/event-stream reader for the tests and the benchmark (what a browser's EventSource does)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    """One dispatched event; ``comment`` set (and nothing else) for a comment line such as a heartbeat."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse(chunks: Iterable[bytes | str]) -> Iterator[Event]:
    """Events from a stream's raw chunks, split at blank lines as the SSE specification says."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event = Event()
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    event.comment = value
                elif name == "data":
                    event.data = f"{event.data}\n{value}" if event.data else value
                elif name == "event":
                    event.event = value
                elif name == "id":
                    event.id = value
                elif name == "retry":
                    event.retry = int(value)
            yield event
