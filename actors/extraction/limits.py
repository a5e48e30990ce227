"""The knobs of extraction, passed in explicitly so the library never reads settings itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.settings import Settings

#: What an upload may ask of OCR: ``auto`` reads pages and images without text that look like
#: documents, ``always`` reads every page and image, ``never`` reads none.
OCR_MODES: tuple[str, ...] = ("auto", "always", "never")

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
        files_per_child: files one isolated child extracts before it is replaced (1: a fresh
            child per file); a child is replaced at once after any file it did not extract.
        keep_exif_gps: report GPS position in the result (never in derivatives).
        max_text_bytes_in_result: budget of page text kept in the result; past it pages carry
            empty text and ``text_truncated`` is set, the ``text`` derivative still has it all.
        ocr_mode: one of :data:`OCR_MODES`, chosen per upload.
        tesseract: the Tesseract command, or None where it is not installed (the result then
            says ``ocr: "unavailable"``); see :func:`actors.extraction.ocr.probe`.
        ocr_languages: Tesseract language codes (``eng``, ``deu``...), all used at once.
        ocr_dpi: resolution PDF pages are rendered at for OCR.
        ocr_max_pixels: largest image handed to Tesseract; larger pages and images are scaled down.
        ocr_max_pages: pages read by OCR in one document; the rest are left with code ``ocr_page_limit``.
        ocr_time_limit_seconds: OCR's own time budget; pages past it get code ``ocr_time_limit``.
        tables_max_pages: pages searched for tables; past them ``tables_error`` says ``tables_page_limit``.
        tables_time_limit_seconds: table extraction's own time budget (``tables_time_limit``).
        max_table_bytes_in_result: budget of table cells kept in the result; past it tables carry
            no rows and ``tables_truncated`` is set, their CSV derivatives still have them all.
    """

    thumbnail_sizes: tuple[int, ...] = (256, 1024)
    derivative_format: str = "JPEG"
    max_image_pixels: int = 64_000_000
    max_pdf_pages: int = 2000
    time_limit_seconds: float = 30
    memory_limit_mb: int = 1024
    isolation: bool = True
    files_per_child: int = 50
    keep_exif_gps: bool = False
    max_text_bytes_in_result: int = 256 * 1024
    ocr_mode: str = "auto"
    tesseract: str | None = "tesseract"
    ocr_languages: tuple[str, ...] = ("eng",)
    ocr_dpi: int = 300
    ocr_max_pixels: int = 16_000_000
    ocr_max_pages: int = 100
    ocr_time_limit_seconds: float = 180
    tables_max_pages: int = 500
    tables_time_limit_seconds: float = 60
    max_table_bytes_in_result: int = 256 * 1024

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
        if self.files_per_child <= 0:
            raise ValueError(f"files_per_child must be positive, not {self.files_per_child}")
        if self.ocr_mode not in OCR_MODES:
            raise ValueError(f"ocr_mode must be one of {OCR_MODES}, not {self.ocr_mode!r}")
        object.__setattr__(self, "ocr_languages", tuple(self.ocr_languages))
        if not self.ocr_languages or self.ocr_dpi <= 0 or self.ocr_max_pixels <= 0:
            raise ValueError("OCR needs a language, a positive resolution and a positive pixel limit")
        if self.ocr_time_limit_seconds <= 0 or self.tables_time_limit_seconds <= 0:
            raise ValueError("OCR and table time limits must be positive")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, ocr_mode: str = "auto", tesseract: str | None = None
    ) -> ExtractLimits:
        """The extraction limits configured in ``settings``, for an upload that asked ``ocr_mode``.

        ``tesseract`` is the command :func:`actors.extraction.ocr.probe` found (None: unavailable).
        """
        return cls(
            thumbnail_sizes=tuple(settings.thumbnail_sizes),
            derivative_format=settings.derivative_format,
            max_image_pixels=settings.max_image_pixels,
            max_pdf_pages=settings.max_pdf_pages,
            time_limit_seconds=float(settings.extract_time_limit_seconds),
            memory_limit_mb=settings.extract_memory_limit_mb,
            isolation=settings.extract_isolation,
            files_per_child=settings.extract_files_per_child,
            keep_exif_gps=settings.keep_exif_gps,
            max_text_bytes_in_result=settings.max_text_bytes_in_result,
            ocr_mode=ocr_mode,
            tesseract=tesseract,
            ocr_languages=tuple(settings.ocr_languages),
            ocr_dpi=settings.ocr_dpi,
            ocr_max_pixels=settings.ocr_max_pixels,
            ocr_max_pages=settings.ocr_max_pages,
            ocr_time_limit_seconds=float(settings.ocr_time_limit_seconds),
            tables_max_pages=settings.tables_max_pages,
            tables_time_limit_seconds=float(settings.tables_time_limit_seconds),
            max_table_bytes_in_result=settings.max_table_bytes_in_result,
        )

    @property
    def total_time_limit_seconds(self) -> float:
        """The isolated child's wall-clock limit: parsing's, plus the budgets of tables and OCR.

        Tables and OCR stop themselves at their own budgets, so this hard limit only acts on
        parsing that runs away (or on a table or OCR step stuck in native code).
        """
        return self.time_limit_seconds + self.tables_time_limit_seconds + self.ocr_time_limit_seconds

    @property
    def extension(self) -> str:
        """File extension of derivatives in :attr:`derivative_format`."""
        return DERIVATIVE_FORMATS[self.derivative_format][0]

    @property
    def content_type(self) -> str:
        """Content type of derivatives in :attr:`derivative_format`."""
        return DERIVATIVE_FORMATS[self.derivative_format][1]
