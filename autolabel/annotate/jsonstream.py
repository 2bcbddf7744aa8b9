"""A JSON file holding one array (a Label Studio export), read item by item: memory stays near one item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autolabel.errors import UsageError


def first_char(p: Path) -> str:
    """The file's first character that is not white space (or a byte-order mark)."""
    with p.open("rb") as f:
        head = f.read(4096).decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    return head[:1]


def json_array_items(path: Path, chunk: int = 1 << 20) -> Iterator[Any]:
    """The items of a JSON file holding one array, parsed one at a time from a growing buffer, so memory
    stays near one item (a Label Studio export of many tasks is never held whole)."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as f:
        buf, pos, eof = f.read(chunk).lstrip("\ufeff"), 0, False
        pos = buf.index("[") + 1
        while True:
            while True:  # skip white space and commas (read more when the buffer runs out)
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    pos += 1
                if pos < len(buf) or eof:
                    break
                more = f.read(chunk)
                buf, pos, eof = buf[pos:] + more, 0, not more
            if pos >= len(buf):
                raise UsageError(f"'{path}' ends before its list of tasks is closed (a cut-off export?)")
            if buf[pos] == "]":
                return
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if eof:
                    raise UsageError(f"'{path}' is not valid JSON ({e.msg} at character {e.pos})") from None
                more = f.read(max(chunk, len(buf)))  # an item longer than the buffer: read (doubling) more
                buf, pos, eof = buf[pos:] + more, 0, not more
                continue
            except RecursionError:
                raise UsageError(f"'{path}' is JSON nested too deeply to be an annotation export") from None
            yield item
            buf, pos = buf[end:], 0
