"""Why the console's text search is a bounded scan: Apache Cassandra 5.0 has no SAI text analyzers.

The issue asked to use SAI analyzers for the text term if they work on 5.0.x. On the real node they
do not: `index_analyzer` (tokenizing, Lucene) is refused ("not understood by StorageAttachedIndex")
and the `:` operator is not in 5.0's grammar; those are DataStax's (DSE, HCD, Astra) and later
Apache releases'. 5.0 only has the non-tokenizing options (case_sensitive, normalize, ascii), which
match a whole value, not a word in a log line. So /logs/ reads the chosen partitions and filters in
the dashboard, at most `scan_limit` rows a page, and says so. These tests pin that finding: when a
Cassandra release accepts analyzers, the first one fails and says the console can use them.
"""

from __future__ import annotations

import uuid

import pytest
from cassandra.protocol import InvalidRequest, SyntaxException

from iact.cassandra.session import open_session


@pytest.fixture(scope="module")
def table(cassandra_settings):
    keyspace = f"sai_probe_{uuid.uuid4().hex[:8]}"
    with open_session(cassandra_settings) as session:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.lines (host text, seq int, message text, PRIMARY KEY (host, seq))")
        try:
            yield session, f"{keyspace}.lines"
        finally:
            session.execute(f"DROP KEYSPACE {keyspace}")


def test_a_tokenizing_analyzer_is_refused(table):
    session, name = table
    try:
        session.execute(
            f"CREATE INDEX lines_analyzed ON {name} (message) USING 'sai' "
            "WITH OPTIONS = {'index_analyzer': 'standard'}"
        )
    except Exception as refused:  # the server refused it; its text is what is asserted
        assert "not understood by StorageAttachedIndex" in str(refused), refused
    else:
        pytest.fail(
            "this Cassandra accepts SAI analyzers: the console's text term can use `message : 'term'` instead of "
            "a bounded scan (iact.dora.logs.search)"
        )


def test_the_non_tokenizing_options_match_whole_values_only(table):
    session, name = table
    session.execute(
        f"CREATE INDEX IF NOT EXISTS lines_folded ON {name} (message) USING 'sai' "
        "WITH OPTIONS = {'case_sensitive': 'false', 'normalize': 'true'}"
    )
    session.execute(f"INSERT INTO {name} (host, seq, message) VALUES ('cass1', 1, 'Failed password for root')")
    found = lambda term: [r.seq for r in session.execute(f"SELECT seq FROM {name} WHERE message = %s", (term,))]  # noqa: E731
    assert found("failed PASSWORD for root") == [1], "a whole value matches, case folded"
    assert found("password") == [], "a word inside a line does not: no use for a text term"
    with pytest.raises((SyntaxException, InvalidRequest)):
        session.execute(f"SELECT seq FROM {name} WHERE message : 'password'")
