"""What a name in a scenario may be: a server's, a client's label, a client model's.

Kept apart from the scenario's models so that what checks a model's name (the client
layer, imported by the server process too) does not bring pydantic with it.
"""

from __future__ import annotations

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
NAME_MAX = 64  # characters
# NAME_PATTERN, said:
NAME_RULE = "ASCII letters (a-z, A-Z), digits, '_', '-' and '.', starting with a letter or '_'"
