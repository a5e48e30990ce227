"""Image extraction: description, EXIF privacy, derivatives, and hostile images."""

from __future__ import annotations

import pytest
from PIL import ExifTags, Image

from actors.extraction import Derivative, Extraction
from models.errors import FileRejected
from tests.actors.extraction import corpus
from tests.actors.extraction.conftest import Extract


def sizes(result: Extraction) -> dict[str, tuple[int | None, int | None]]:
    return {d.name: (d.width, d.height) for d in result.derivatives}


def assert_no_personal_data(derivative: Derivative) -> None:
    """The derivative file itself carries no EXIF (so no GPS), no XMP, no names or serials."""
    data = derivative.path.read_bytes()
    with Image.open(derivative.path) as im:
        exif = im.getexif()
        assert ExifTags.Base.GPSInfo not in exif
        assert exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert "xmp" not in im.info
    for secret in (corpus.ARTIST.encode(), corpus.SERIAL.encode(), b"xmpmeta", b"Exif\x00\x00"):
        assert secret not in data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_photo_is_described_and_its_exif_filtered(extract: Extract, fmt: str) -> None:
    result = extract(corpus.photo(fmt), name="holiday.pdf")  # the name never matters

    assert result.kind == "image"
    assert result.mime == f"image/{fmt.lower()}"
    info = result.image
    assert info is not None
    assert (info["format"], info["width"], info["height"], info["mode"]) == (fmt, 400, 200, "RGB")
    assert (info["frames"], info["animated"]) == (1, False)
    assert info["exif"] == {"Make": "Acme", "Model": "Cam 1", "Orientation": 6, "FNumber": 2.8}
    assert result.document is None


def test_gps_is_reported_only_when_kept(extract: Extract) -> None:
    result = extract(corpus.photo("JPEG"), keep_exif_gps=True)

    assert result.image is not None
    assert result.image["exif"]["gps"] == {"latitude": corpus.LATITUDE, "longitude": corpus.LONGITUDE}
    assert "Artist" not in result.image["exif"]
    for derivative in result.derivatives:
        assert_no_personal_data(derivative)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_derivatives_are_upright_scaled_and_stripped(extract: Extract, fmt: str) -> None:
    result = extract(corpus.photo(fmt), thumbnail_sizes=(100, 256))

    # Stored 400x200 with orientation 6: shown as 200x400, the stored left half on top.
    assert sizes(result) == {"thumb_100": (50, 100), "thumb_256": (128, 256), "web": (200, 400)}
    for derivative in result.derivatives:
        assert derivative.filename == f"{derivative.name}.jpg"
        assert derivative.content_type == "image/jpeg"
        assert derivative.path.parent.name == "out"
        with Image.open(derivative.path) as im:
            assert (im.format, im.size) == ("JPEG", (derivative.width, derivative.height))
            top = im.convert("L").getpixel((im.width // 2, im.height // 8))
            bottom = im.convert("L").getpixel((im.width // 2, im.height * 7 // 8))
        assert isinstance(top, int) and isinstance(bottom, int)
        assert top < 40 and bottom > 215
        assert_no_personal_data(derivative)


def test_large_image_gets_a_web_variant_of_2048(extract: Extract) -> None:
    result = extract(corpus.encode(corpus.landscape(3000, 1500), "JPEG", quality=90))

    assert sizes(result) == {"thumb_256": (256, 128), "thumb_1024": (1024, 512), "web": (2048, 1024)}
    web = result.derivative("web")
    assert web is not None and web.path.stat().st_size < 300_000


def test_webp_derivatives_keep_transparency(extract: Extract) -> None:
    result = extract(corpus.transparent_png(), derivative_format="webp")

    thumb = result.derivative("thumb_256")
    assert thumb is not None
    assert (thumb.filename, thumb.content_type) == ("thumb_256.webp", "image/webp")
    with Image.open(thumb.path) as im:
        assert (im.format, im.mode, im.size) == ("WEBP", "RGBA", (256, 256))
        assert im.getpixel((10, 10)) == (0, 0, 0, 0)


def test_transparency_becomes_white_in_jpeg(extract: Extract) -> None:
    result = extract(corpus.transparent_png())

    thumb = result.derivative("thumb_256")
    assert thumb is not None
    with Image.open(thumb.path) as im:
        assert im.mode == "RGB"
        pixel = im.getpixel((10, 10))
    assert isinstance(pixel, tuple) and min(pixel) > 250


def test_a_derivative_no_smaller_than_the_image_shares_its_encoding(extract: Extract) -> None:
    """A 64x48 image has the same pixels in every derivative: encoded once, not three times."""
    small = extract(corpus.animated_gif(frames=2))
    files = {d.name: d.path.read_bytes() for d in small.derivatives}
    assert files["thumb_256"] == files["thumb_1024"] == files["web"]


def test_derivatives_of_different_sizes_are_encoded_each(extract: Extract) -> None:
    large = extract(corpus.encode(corpus.landscape(3000, 1500), "JPEG", quality=90))
    assert len({d.path.read_bytes() for d in large.derivatives}) == 3


def test_animated_gif_counts_frames_and_thumbnails_the_first(extract: Extract) -> None:
    result = extract(corpus.animated_gif(frames=5))

    assert result.image is not None
    assert (result.image["format"], result.image["frames"], result.image["animated"]) == ("GIF", 5, True)
    assert sizes(result) == {"thumb_256": (64, 48), "thumb_1024": (64, 48), "web": (64, 48)}
    thumb = result.derivative("thumb_256")
    assert thumb is not None
    with Image.open(thumb.path) as im:
        red, green, blue = im.convert("RGB").getpixel((32, 24))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_multi_page_tiff_has_frames_but_is_not_animated(extract: Extract) -> None:
    pages = [corpus.landscape(64, 64), Image.new("RGB", (64, 64), "red")]
    result = extract(corpus.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))

    assert result.image is not None
    assert (result.image["frames"], result.image["animated"]) == (2, False)


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [("TIFF", "RGB", "image/tiff"), ("BMP", "P", "image/bmp"), ("ICO", "RGBA", "image/vnd.microsoft.icon")],
)
def test_other_raster_formats(extract: Extract, fmt: str, mode: str, mime: str) -> None:
    im = corpus.landscape(64, 64).convert(mode)
    result = extract(corpus.encode(im, fmt))

    assert result.mime == mime
    assert result.image is not None and result.image["format"] == fmt
    assert sizes(result)["thumb_256"] == (64, 64)


def test_sixteen_bit_greyscale_is_scaled_down_not_clipped(extract: Extract) -> None:
    im = Image.new("I;16", (40, 40), 32768)
    result = extract(corpus.encode(im, "PNG"))

    thumb = result.derivative("thumb_256")
    assert thumb is not None
    with Image.open(thumb.path) as out:
        value = out.getpixel((20, 20))
    assert isinstance(value, int) and 120 <= value <= 136


@pytest.mark.parametrize(
    ("width", "height", "overrides"),
    [
        pytest.param(100_000, 100_000, {}, id="over-twice-pillows-limit"),
        pytest.param(10_000, 10_000, {}, id="over-pillows-warning-limit"),
        pytest.param(9_000, 9_000, {}, id="over-our-limit"),
        pytest.param(2_000, 1_000, {"max_image_pixels": 1_000_000}, id="over-a-configured-limit"),
    ],
)
def test_decompression_bombs(extract: Extract, width: int, height: int, overrides: dict[str, int]) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(corpus.png(width, height), **overrides)
    assert caught.value.code == "decompression_bomb"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_images_are_corrupt(extract: Extract, fmt: str) -> None:
    data = corpus.encode(corpus.landscape(), fmt)
    with pytest.raises(FileRejected) as caught:
        extract(data[: len(data) // 2])
    assert caught.value.code == "corrupt_file"


def test_png_header_without_pixels_is_corrupt(extract: Extract) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(corpus.png(64, 64))
    assert caught.value.code == "corrupt_file"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"just some notes\n", "text/plain"),
        (b"PK\x05\x06" + bytes(18), "application/zip"),
        (bytes(range(256)), "application/octet-stream"),
    ],
)
def test_other_files_are_only_typed(extract: Extract, data: bytes, mime: str) -> None:
    result = extract(data, name="photo.jpg")

    assert (result.kind, result.mime) == ("other", mime)
    assert (result.document, result.image, result.derivatives) == (None, None, [])


def test_eps_named_png_never_reaches_a_decoder(extract: Extract) -> None:
    """Pillow could hand EPS to Ghostscript: by its bytes it is text, so it is only typed."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    result = extract(eps, name="evil.png")

    assert (result.kind, result.mime, result.derivatives) == ("other", "text/plain", [])


def test_gif_magic_without_a_gif_is_corrupt(extract: Extract) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(b"GIF89a" + bytes(10), name="x.gif")
    assert caught.value.code == "corrupt_file"
