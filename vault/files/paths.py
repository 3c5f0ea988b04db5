"""Validation of names and folders (pure): what API.md allows, normalised once at the edge."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from msgspec import Meta

from vault import errors

MAX_NAME_BYTES = 255
MAX_FOLDER_BYTES = 4096


def normalize_name(name: str, field: str = "name") -> str:
    """One path segment, NFC: no ``/``, not ``.``/``..``, 1-255 UTF-8 bytes, and none of the
    characters in ``_REFUSED`` (but a zero-width joiner inside an emoji sequence)."""
    value = unicodedata.normalize("NFC", name)
    problem = None
    if not value:
        problem = "must not be empty"
    elif "/" in value or "\x00" in value:
        problem = "must not contain '/' or NUL"
    elif value in (".", ".."):
        problem = "must not be '.' or '..'"
    elif not all(_allowed(value, i) for i in range(len(value))):
        problem = "must not contain control, formatting or separator characters"
    elif len(value.encode("utf-8")) > MAX_NAME_BYTES:  # after the check above: no surrogates left
        problem = f"must be at most {MAX_NAME_BYTES} UTF-8 bytes"
    if problem:
        raise errors.ValidationError(f"{field} {problem}", details={"field": field})
    return value


# Unicode categories a name may not hold: controls (C0, DEL, C1), format characters (bidi
# overrides and isolates, zero-width spaces and joiners, the BOM), line and paragraph separators,
# surrogates and private use. They make names that look like other names, or that break lines.
_REFUSED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_ZWJ = "\u200d"


def _allowed(value: str, i: int) -> bool:
    ch = value[i]
    if unicodedata.category(ch) not in _REFUSED:
        return True
    # The one exception: a zero-width joiner inside an emoji sequence (a family, a flag), between
    # two symbols (a variation selector may sit between an emoji and it).
    if ch != _ZWJ or i == 0 or i == len(value) - 1:
        return False
    before = value[i - 1] if value[i - 1] != "\ufe0f" or i < 2 else value[i - 2]
    return unicodedata.category(before) == "So" and unicodedata.category(value[i + 1]) == "So"


def normalize_folder(folder: str, field: str = "folder") -> str:
    """An absolute POSIX folder path, NFC, without ``.``/``..``/empty segments; ``/`` is the root."""
    value = unicodedata.normalize("NFC", folder)
    if not value.startswith("/"):
        raise errors.ValidationError(f"{field} must be an absolute path starting with '/'", details={"field": field})
    if len(value.encode("utf-8", "surrogatepass")) > MAX_FOLDER_BYTES:
        raise errors.ValidationError(f"{field} is too long", details={"field": field})
    if value == "/":
        return value
    segments = value.rstrip("/").split("/")[1:]
    for segment in segments:
        if segment == "":
            raise errors.ValidationError(f"{field} must not contain empty segments ('//')", details={"field": field})
        normalize_name(segment, field)
    return "/" + "/".join(segments)


# What the functions above accept, as the OpenAPI patterns of the fields they check (documented,
# not enforced by msgspec: the functions give the precise message). The refused categories as code
# point ranges (Unicode 14.0, Python 3.11's unicodedata; tests/test_paths.py compares them with the
# running Python's). Two rules have no pattern: the UTF-8 byte limits (a pattern counts characters)
# and the zero-width joiner inside an emoji sequence (the pattern refuses every ZWJ).
REFUSED_RANGES = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xD800, 0xF8FF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
    (0xF0000, 0xFFFFD),
    (0x100000, 0x10FFFD),
)


def _escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def _without_surrogates(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The ranges less U+D800..U+DFFF: no UTF-8 text holds a surrogate, and a pattern naming them is
    not one that Rust's regex engine (jsonschema-rs, which schemathesis validates with) compiles."""
    kept = []
    for a, b in ranges:
        if a < 0xD800 <= b or a <= 0xDFFF < b or 0xD800 <= a <= b <= 0xDFFF:
            kept += [(x, y) for x, y in ((a, min(b, 0xD7FF)), (max(a, 0xE000), b)) if x <= y]
        else:
            kept.append((a, b))
    return kept


_CHAR = (
    "[^/"
    + "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in _without_surrogates(REFUSED_RANGES))
    + "]"
)
_SEGMENT = rf"(?!\.\.?(?:/|$)){_CHAR}+"
# ``$(?!\n)``: a Python ``$`` also matches before a final newline.
NAME_PATTERN = rf"^(?!\.\.?$){_CHAR}+$(?!\n)"
FOLDER_PATTERN = rf"^(?:/+|(?:/{_SEGMENT})+/*)$(?!\n)"
NON_ROOT_FOLDER_PATTERN = rf"^(?:/{_SEGMENT})+/*$(?!\n)"
FILE_PATH_PATTERN = rf"^(?:/+|(?:/{_SEGMENT})+/+)(?!\.\.?$){_CHAR}+$(?!\n)"

FileName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_NAME_BYTES,
        extra_json_schema={"pattern": NAME_PATTERN},
        description=f"one path segment: no '/', not '.' or '..', at most {MAX_NAME_BYTES} UTF-8 bytes, "
        "no control, formatting, separator, surrogate or private-use characters (NFC-normalised)",
    ),
]
FolderPath = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_FOLDER_BYTES,
        extra_json_schema={"pattern": FOLDER_PATTERN},
        description=f"an absolute folder such as /photos/2024 ('/' is the root), at most {MAX_FOLDER_BYTES} "
        "UTF-8 bytes; each segment as a file name",
    ),
]
NonRootFolder = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=MAX_FOLDER_BYTES,
        extra_json_schema={"pattern": NON_ROOT_FOLDER_PATTERN},
        description="an absolute folder other than the root '/'",
    ),
]
FilePath = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=MAX_FOLDER_BYTES + 1 + MAX_NAME_BYTES,
        extra_json_schema={"pattern": FILE_PATH_PATTERN},
        description="an absolute file path such as /photos/IMG_1.jpg: a folder, '/', a file name",
    ),
]


def parent_folders(folder: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b", "/a/b/c"]`` (the root is implicit)."""
    if folder == "/":
        return []
    parts = folder.split("/")[1:]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def split_path(path: str, field: str = "remotePath") -> tuple[str, str]:
    """``/photos/IMG_1.jpg`` -> (``/photos``, ``IMG_1.jpg``), both validated."""
    value = unicodedata.normalize("NFC", path)
    if not value.startswith("/") or value.endswith("/"):
        raise errors.ValidationError(f"{field} must be an absolute file path", details={"field": field})
    folder, _, name = value.rpartition("/")
    return normalize_folder(folder or "/", field), normalize_name(name, field)


# Matched with fullmatch: "$" would also match before a final newline, and a stored "image/jpeg\n"
# would then break every download of the file (no header may hold a newline).
_MIME_RE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}( *;[ -~]{0,200})?")
DEFAULT_MIME = "application/octet-stream"
MimeType = Annotated[
    str,
    Meta(
        max_length=255,
        extra_json_schema={"pattern": f"^(?:{_MIME_RE.pattern})?$(?!\\n)"},
        description="a media type such as image/jpeg (parameters allowed); empty: application/octet-stream",
    ),
]


def normalize_mime(value: str | None, field: str = "mimeType") -> str:
    """A ``type/subtype`` media type (parameters allowed), safe to send back as Content-Type."""
    if not value:
        return DEFAULT_MIME
    if not _MIME_RE.fullmatch(value):
        raise errors.ValidationError(f"{field} must be a media type such as image/jpeg", details={"field": field})
    return value


def servable_mime(value: str) -> str:
    """The stored media type if it is a valid header value, else ``application/octet-stream``."""
    return value if value and _MIME_RE.fullmatch(value) else DEFAULT_MIME
