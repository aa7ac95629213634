"""Decoding a vendor's JSON answer, keeping each array element's own text.

A page of devices is a JSON array of objects. Besides the decoded objects, the collector keeps
the text of each as the vendor sent it: hashed, it tells a device seen again with the same
record from one that changed without normalizing or re-encoding it, and a record that is
written is stored from that text instead of from a fresh encoding of the decoded object
(collectors/inventory_store.py).

:func:`decode` accepts exactly what ``json.loads`` accepts and returns the same values; an
array comes back as a :class:`JsonArray`, a ``list`` whose ``texts`` holds element ``i``'s text
at index ``i``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's four whitespace characters


def _skip(text: str, at: int) -> int:
    """The index of the first non-whitespace character at or after ``at``."""
    found = _WHITESPACE.match(text, at)
    return found.end() if found else at


class JsonArray(list[Any]):
    """A decoded JSON array, with the text of each element (``texts[i]`` for ``self[i]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []


def decode(raw: bytes) -> Any:
    """``json.loads(raw)``, but an array is a :class:`JsonArray`. Raises what ``json.loads``
    raises (``ValueError``, ``UnicodeDecodeError``) for a body that is not JSON."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    start = _skip(text, 0)
    if not text.startswith("[", start):
        return _DECODER.decode(text)
    items = JsonArray()
    texts = items.texts
    at = _skip(text, start + 1)
    if text.startswith("]", at):
        end = at + 1
    else:
        while True:
            item, end = _DECODER.raw_decode(text, at)
            items.append(item)
            texts.append(text[at:end])
            end = _skip(text, end)
            if text.startswith(",", end):
                at = _skip(text, end + 1)
                continue
            if text.startswith("]", end):
                end += 1
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, end)
    rest = _skip(text, end)
    if rest != len(text):
        raise json.JSONDecodeError("Extra data", text, rest)
    return items
