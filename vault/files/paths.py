"""Validation of names and folders (pure): what API.md allows, normalised once at the edge."""

from __future__ import annotations

import re
import unicodedata

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
    elif len(value.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"must be at most {MAX_NAME_BYTES} UTF-8 bytes"
    elif not all(_allowed(value, i) for i in range(len(value))):
        problem = "must not contain control, formatting or separator characters"
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
    if len(value.encode("utf-8")) > MAX_FOLDER_BYTES:
        raise errors.ValidationError(f"{field} is too long", details={"field": field})
    if value == "/":
        return value
    segments = value.rstrip("/").split("/")[1:]
    for segment in segments:
        if segment == "":
            raise errors.ValidationError(f"{field} must not contain empty segments ('//')", details={"field": field})
        normalize_name(segment, field)
    return "/" + "/".join(segments)


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
