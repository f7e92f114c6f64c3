"""Zone problems, reported like a compiler: file:line:column: path: message."""

from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """Render a document path as `records."ns1.sub".MX[0].preference`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _plain(part) else '"' + part.replace('"', '\\"') + '"'
        out += text if not out else "." + text
    return out or "(document)"


def _plain(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "-_@*" for c in key)


@dataclass(frozen=True, order=True)
class ZoneError:
    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: Path
    message: str

    def __str__(self) -> str:
        if not self.line:  # about the file or folder as a whole
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {format_path(self.path)}: {self.message}"


class ZoneLoadError(Exception):
    """Raised with every problem found in a set of zone files."""

    def __init__(self, errors: list[ZoneError]):
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
