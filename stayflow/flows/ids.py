from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# Ids appear in URLs, files and form values: keep them to a safe, readable alphabet.
Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", max_length=100)
]
