"""Names, folders and media types as clients send them: normalised once (NFC), refused with a
``VALIDATION_ERROR`` whose ``details.field`` names the offending field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import errors
from vault.files.paths import (
    _REFUSED,
    DEFAULT_MIME,
    FILE_PATH_PATTERN,
    FOLDER_PATTERN,
    MAX_NAME_BYTES,
    NAME_PATTERN,
    REFUSED_RANGES,
    normalize_folder,
    normalize_mime,
    normalize_name,
    parent_folders,
    servable_mime,
    split_path,
)

E_ACUTE_NFD = "e\u0301"  # "e" + combining acute accent
E_ACUTE_NFC = "\u00e9"  # "é"


def refused(call: Callable[[], object]) -> errors.ValidationError:
    with pytest.raises(errors.ValidationError) as info:
        call()
    assert info.value.code == "VALIDATION_ERROR" and info.value.status == 400
    return info.value


# -- folders --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder,expected",
    [
        ("/", "/"),
        ("/photos", "/photos"),
        ("/photos/", "/photos"),
        ("/photos/2024/jan", "/photos/2024/jan"),
        ("/photos/2024/jan/", "/photos/2024/jan"),
        ("/.hidden/...", "/.hidden/..."),
        ("/with space/ x ", "/with space/ x "),
    ],
)
def test_absolute_folders_are_kept_without_the_trailing_slash(folder: str, expected: str) -> None:
    assert normalize_folder(folder) == expected


@pytest.mark.parametrize("folder", ["", "photos", "photos/2024", "./photos", "../photos", "~/photos"])
def test_relative_folders_are_refused(folder: str) -> None:
    error = refused(lambda: normalize_folder(folder))
    assert error.details == {"field": "folder"}
    assert "absolute" in error.message


@pytest.mark.parametrize("folder", ["/.", "/..", "/a/.", "/a/..", "/a/./b", "/a/../b", "/../etc", "/a/../../b/"])
def test_dot_segments_are_refused(folder: str) -> None:
    assert refused(lambda: normalize_folder(folder)).details == {"field": "folder"}


@pytest.mark.parametrize("folder", ["/a//b", "//a", "/a//b/"])
def test_empty_segments_are_refused(folder: str) -> None:
    assert refused(lambda: normalize_folder(folder)).details == {"field": "folder"}


@pytest.mark.parametrize("folder", ["/a\x00b", "/a/\x00", "/a\nb", "/a\tb", "/a\rb/c", "/\x1f"])
def test_nul_and_control_characters_in_folders_are_refused(folder: str) -> None:
    assert refused(lambda: normalize_folder(folder)).details == {"field": "folder"}


def test_folder_segments_follow_the_name_rules_under_the_folder_field() -> None:
    assert normalize_folder("/" + "a" * 255) == "/" + "a" * 255
    error = refused(lambda: normalize_folder("/" + "a" * 256 + "/b", "files[2].folder"))
    assert error.details == {"field": "files[2].folder"}
    assert error.message.startswith("files[2].folder ")


def test_folders_over_4096_bytes_are_refused() -> None:
    fits = "/" + "/".join(["a" * 99] * 40) + "/" + "b" * 95  # 4096 bytes
    assert len(fits.encode()) == 4096
    assert normalize_folder(fits) == fits
    error = refused(lambda: normalize_folder(fits + "b"))
    assert error.details == {"field": "folder"}


def test_folders_are_nfc_normalised() -> None:
    decomposed = f"/caf{E_ACUTE_NFD}/r{E_ACUTE_NFD}sum{E_ACUTE_NFD}/"
    assert normalize_folder(decomposed) == f"/caf{E_ACUTE_NFC}/r{E_ACUTE_NFC}sum{E_ACUTE_NFC}"


def test_custom_field_is_named_in_message_and_details() -> None:
    error = refused(lambda: normalize_folder("x", "files[0].folder"))
    assert error.details == {"field": "files[0].folder"}
    assert error.message.startswith("files[0].folder ")


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["IMG_1.jpg", ".hidden", "...", "a..b", " spaced ", "фото.jpg", "写真 📷.heic", "a\\b", "x" * 255]
)
def test_ordinary_names_are_kept(name: str) -> None:
    assert normalize_name(name) == name


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_empty_and_dot_names_are_refused(name: str) -> None:
    assert refused(lambda: normalize_name(name)).details == {"field": "name"}


@pytest.mark.parametrize("name", ["a/b", "/", "a/", "/a"])
def test_slash_in_a_name_is_refused(name: str) -> None:
    error = refused(lambda: normalize_name(name))
    assert error.details == {"field": "name"}
    assert "'/'" in error.message


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "a\x01", "line\nbreak", "cr\r", "tab\there", "\x1b[31m", "\x1f"])
def test_nul_and_control_characters_in_names_are_refused(name: str) -> None:
    assert refused(lambda: normalize_name(name)).details == {"field": "name"}


@pytest.mark.parametrize(
    "name",
    [
        "a" * 255,
        E_ACUTE_NFC * 127 + "a",  # 2-byte characters: 255 bytes
        "€" * 85,  # 3-byte characters: 255 bytes
        "😀" * 63 + "abc",  # 4-byte characters: 255 bytes
    ],
)
def test_names_up_to_255_utf8_bytes_are_accepted(name: str) -> None:
    assert len(name.encode("utf-8")) == 255
    assert normalize_name(name) == name


@pytest.mark.parametrize("name", ["a" * 256, E_ACUTE_NFC * 128, "€" * 86, "😀" * 64])
def test_names_over_255_utf8_bytes_are_refused(name: str) -> None:
    assert len(name) <= 256 and len(name.encode("utf-8")) > 255  # counted in bytes, not characters
    error = refused(lambda: normalize_name(name))
    assert error.details == {"field": "name"}
    assert "255" in error.message


def test_names_are_nfc_normalised() -> None:
    assert normalize_name(f"caf{E_ACUTE_NFD}.jpg") == f"caf{E_ACUTE_NFC}.jpg"
    assert normalize_name("A\u030angstr\u00f6m") == "\u00c5ngstr\u00f6m"
    assert unicodedata.is_normalized("NFC", normalize_name(f"r{E_ACUTE_NFD}sum{E_ACUTE_NFD}"))


def test_nfc_not_nfkc() -> None:
    # Compatibility characters are not folded: "ﬁ" stays one ligature, "①" stays a circled digit.
    assert normalize_name("\ufb01le\u2460") == "\ufb01le\u2460"


def test_length_is_counted_after_normalisation() -> None:
    name = E_ACUTE_NFD * 127  # 381 bytes decomposed, 254 bytes composed
    assert len(name.encode("utf-8")) > 255
    assert normalize_name(name) == E_ACUTE_NFC * 127


def test_name_error_names_the_given_field() -> None:
    error = refused(lambda: normalize_name("a/b", "files[3].name"))
    assert error.details == {"field": "files[3].name"}
    assert error.message.startswith("files[3].name ")


# -- whole paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/photos/IMG_1.jpg", ("/photos", "IMG_1.jpg")),
        ("/IMG_1.jpg", ("/", "IMG_1.jpg")),
        ("/a/b/c.txt", ("/a/b", "c.txt")),
        (f"/caf{E_ACUTE_NFD}/{E_ACUTE_NFD}.txt", (f"/caf{E_ACUTE_NFC}", f"{E_ACUTE_NFC}.txt")),
    ],
)
def test_split_path(path: str, expected: tuple[str, str]) -> None:
    assert split_path(path) == expected


@pytest.mark.parametrize("path", ["", "photos/x.jpg", "/photos/", "/", "/a/../x.jpg", "/a/./x.jpg", "/a/.."])
def test_split_path_refuses_what_is_not_a_file_path(path: str) -> None:
    assert refused(lambda: split_path(path)).details == {"field": "remotePath"}


def test_parent_folders() -> None:
    assert parent_folders("/") == []
    assert parent_folders("/a") == ["/a"]
    assert parent_folders("/a/b/c") == ["/a", "/a/b", "/a/b/c"]
    assert parent_folders(normalize_folder("/photos/2024/")) == ["/photos", "/photos/2024"]


# -- media types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mime",
    [
        "image/jpeg",
        "image/svg+xml",
        "text/plain; charset=utf-8",
        "text/plain;charset=UTF-8",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Image/JPEG",
    ],
)
def test_media_types_are_kept_as_sent(mime: str) -> None:
    assert normalize_mime(mime) == mime
    assert servable_mime(mime) == mime


def test_missing_media_type_is_octet_stream() -> None:
    assert DEFAULT_MIME == "application/octet-stream"
    assert normalize_mime(None) == DEFAULT_MIME
    assert normalize_mime("") == DEFAULT_MIME


@pytest.mark.parametrize(
    "mime",
    [
        "image",
        "image/",
        "/jpeg",
        "image/jpeg/x",
        "image jpeg",
        "image/jp eg",
        "image/jpé",
        "text/plain\r\nSet-Cookie: a=b",
        "text/plain; x=\x00",
        "a" * 128 + "/b",
    ],
)
def test_invalid_media_types_are_refused_and_never_served(mime: str) -> None:
    assert refused(lambda: normalize_mime(mime)).details == {"field": "mimeType"}
    assert servable_mime(mime) == DEFAULT_MIME


def test_media_type_error_names_the_given_field() -> None:
    assert refused(lambda: normalize_mime("nope", "filetype")).details == {"field": "filetype"}


def test_servable_mime_falls_back_for_empty_stored_value() -> None:
    assert servable_mime("") == DEFAULT_MIME


# "safe to send back as Content-Type": a stored "image/jpeg\n" (JSON mimeType, or tus filetype) makes
# every download of that file answer 500, since werkzeug refuses newlines in header values.


def test_media_type_with_trailing_newline_is_refused() -> None:
    assert refused(lambda: normalize_mime("image/jpeg\n")).details == {"field": "mimeType"}


def test_media_type_with_trailing_newline_is_never_served() -> None:
    assert servable_mime("image/jpeg\n") == DEFAULT_MIME


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202egpj.exe",  # right-to-left override: shows as "invoiceexe.jpg"
        "a\u2066b",  # bidi isolate
        "zero\u200bwidth",  # zero-width space
        "non\u200cjoiner",
        "bom\ufeff.txt",
        "line\u2028sep",
        "para\u2029sep",
        "del\x7f",
        "c1\x85next",
        "private\ue000use",
    ],
)
def test_names_with_invisible_or_spoofing_characters_are_refused(name: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        normalize_name(name)
    assert caught.value.details == {"field": "name"}


@pytest.mark.parametrize(
    "name", ["family \U0001f468\u200d\U0001f469\u200d\U0001f467.jpg", "\u2764\ufe0f\u200d\U0001f525.png"]
)
def test_emoji_joined_by_zero_width_joiners_are_names(name: str) -> None:
    assert normalize_name(name) == name


# -- the OpenAPI patterns say what these functions accept -----------------------------------------


def test_refused_ranges_are_the_refused_categories_of_this_python() -> None:
    ranges: list[tuple[int, int]] = []
    start = None
    for cp in range(0x110000):
        bad = unicodedata.category(chr(cp)) in _REFUSED
        if bad and start is None:
            start = cp
        elif not bad and start is not None:
            ranges.append((start, cp - 1))
            start = None
    assert tuple(ranges) == REFUSED_RANGES


_PIECES = st.sampled_from(["/", ".", "..", "a", "é", E_ACUTE_NFD, "\n", "\x00", "\u200d", "\u202e", "\ue000"])
_TEXTS = st.lists(_PIECES | st.characters(exclude_categories=["Cs"]), max_size=10).map("".join)
_CHECKS = [(NAME_PATTERN, normalize_name), (FOLDER_PATTERN, normalize_folder), (FILE_PATH_PATTERN, split_path)]


def _accepted(check: Callable[[str], object], text: str) -> bool:
    try:
        check(text)
    except errors.ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_the_patterns_accept_what_the_functions_accept(text: str) -> None:
    """Both ways, but for the two rules a pattern cannot state: the UTF-8 byte limits (these texts
    are short) and the zero-width joiner inside an emoji sequence (the patterns refuse every one)."""
    for pattern, check in _CHECKS:
        matched = re.search(pattern, text) is not None
        if matched or "\u200d" not in text:
            assert matched == _accepted(check, text), (pattern[:12], text)


@pytest.mark.parametrize(("pattern", "check"), _CHECKS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_what_a_pattern_generates_is_accepted(
    pattern: str, check: Callable[[str], object], data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(pattern).filter(lambda t: len(t.encode("utf-8")) <= MAX_NAME_BYTES))
    assert _accepted(check, text), text


def test_a_surrogate_is_refused_not_a_crash() -> None:
    # Reordered checks: the byte length was measured first, and encoding a lone surrogate raised
    # UnicodeEncodeError instead of VALIDATION_ERROR.
    refused(lambda: normalize_name("\ud800"))
    refused(lambda: normalize_folder("/a\ud800"))
