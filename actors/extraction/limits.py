"""The knobs of extraction, passed in explicitly so the library never reads settings itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.settings import Settings

#: Output formats for derivatives, with their file extension and content type.
DERIVATIVE_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}


@dataclass(frozen=True)
class ExtractLimits:
    """What extraction may produce and consume.

    Parameters:
        thumbnail_sizes: long side in pixels of each ``thumb_<N>`` derivative.
        derivative_format: ``JPEG`` or ``WEBP`` (case-insensitive) for every image derivative.
        max_image_pixels: width × height above which an image is a ``decompression_bomb``.
        max_pdf_pages: page count above which a PDF is rejected with ``too_many_pages``.
        time_limit_seconds: wall-clock limit of the isolated child (also its CPU limit).
        memory_limit_mb: address-space limit (RLIMIT_AS) of the isolated child.
        isolation: parse in a child process; off only for trusted input and benchmarks.
        keep_exif_gps: report GPS position in the result (never in derivatives).
        max_text_bytes_in_result: budget of page text kept in the result; past it pages carry
            empty text and ``text_truncated`` is set, the ``text`` derivative still has it all.
    """

    thumbnail_sizes: tuple[int, ...] = (256, 1024)
    derivative_format: str = "JPEG"
    max_image_pixels: int = 64_000_000
    max_pdf_pages: int = 2000
    time_limit_seconds: float = 30
    memory_limit_mb: int = 1024
    isolation: bool = True
    keep_exif_gps: bool = False
    max_text_bytes_in_result: int = 256 * 1024

    def __post_init__(self) -> None:
        fmt = self.derivative_format.upper()
        if fmt not in DERIVATIVE_FORMATS:
            raise ValueError(f"derivative_format must be one of {sorted(DERIVATIVE_FORMATS)}, not {fmt!r}")
        object.__setattr__(self, "derivative_format", fmt)
        object.__setattr__(self, "thumbnail_sizes", tuple(int(n) for n in self.thumbnail_sizes))
        if any(n <= 0 for n in self.thumbnail_sizes):
            raise ValueError(f"thumbnail_sizes must be positive, not {self.thumbnail_sizes}")
        if self.time_limit_seconds <= 0 or self.memory_limit_mb <= 0 or self.max_image_pixels <= 0:
            raise ValueError("time, memory and pixel limits must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractLimits:
        """The extraction limits configured in ``settings``."""
        return cls(
            thumbnail_sizes=tuple(settings.thumbnail_sizes),
            derivative_format=settings.derivative_format,
            max_image_pixels=settings.max_image_pixels,
            max_pdf_pages=settings.max_pdf_pages,
            time_limit_seconds=float(settings.extract_time_limit_seconds),
            memory_limit_mb=settings.extract_memory_limit_mb,
            isolation=settings.extract_isolation,
            keep_exif_gps=settings.keep_exif_gps,
            max_text_bytes_in_result=settings.max_text_bytes_in_result,
        )

    @property
    def extension(self) -> str:
        """File extension of derivatives in :attr:`derivative_format`."""
        return DERIVATIVE_FORMATS[self.derivative_format][0]

    @property
    def content_type(self) -> str:
        """Content type of derivatives in :attr:`derivative_format`."""
        return DERIVATIVE_FORMATS[self.derivative_format][1]
