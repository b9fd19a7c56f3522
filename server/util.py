"""Small helpers shared by the feature modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pygls.uris import from_fs_path


def plain(obj: Any) -> Any:
    """pygls hands custom params over as nested namedtuples: turn them into dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise ValueError(f"not a file URI: {uri}")
    return Path(unquote(parsed.path))


def path_to_uri(path: Path | str) -> str:
    uri = from_fs_path(str(path))
    return uri or Path(path).as_uri()
