"""Keyspace, table and column names that are put into CQL text.

CQL binds values, never names, so a keyspace or table taken from a configuration file ends up
formatted into the statement. Checking it is an unquoted CQL identifier where it is read makes
that safe: nothing else can close the name and start another clause.
"""

from __future__ import annotations

import re

from iact.cassandra.settings import SettingsError

# Unquoted CQL identifiers; Cassandra caps keyspace and table names at 48 characters.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def cql_identifier(value: object, what: str) -> str:
    """The name itself if it is an unquoted CQL identifier, else a SettingsError naming `what`."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise SettingsError(
            f"{what} {value!r} is not a valid Cassandra name: use letters, digits and _, "
            "starting with a letter, at most 48 characters"
        )
    return value
