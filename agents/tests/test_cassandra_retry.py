"""Which timed-out writes the agents repeat, and that their own writes qualify."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cassandra import ConsistencyLevel, WriteType
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import SimpleStatement

from iact.cassandra.retry import IdempotentWriteRetryPolicy
from iact.cassandra.session import build_cluster
from iact.cassandra.settings import ConnectionSettings
from iact.sink.cassandra import CassandraSink

QUORUM = ConsistencyLevel.LOCAL_QUORUM


def decide(statement, retry_num, write_type=WriteType.SIMPLE):
    return IdempotentWriteRetryPolicy(write_retries=2).on_write_timeout(statement, QUORUM, write_type, 2, 0, retry_num)


def test_idempotent_writes_are_retried_on_the_next_host_then_given_up():
    insert = SimpleStatement("INSERT ...", is_idempotent=True)
    policy = IdempotentWriteRetryPolicy
    assert [decide(insert, n) for n in (0, 1)] == [(policy.RETRY_NEXT_HOST, QUORUM)] * 2
    assert decide(insert, 2) == (policy.RETHROW, None)


def test_other_writes_keep_the_drivers_default():
    update = SimpleStatement("UPDATE ... SET n = n + 1")
    policy = IdempotentWriteRetryPolicy
    assert decide(update, 0) == (policy.RETHROW, None), "a counter update may have applied: never repeat it"
    assert decide(update, 0, WriteType.BATCH_LOG) == (policy.RETRY, QUORUM)


def test_every_session_of_the_agents_uses_the_policy():
    cluster = build_cluster(ConnectionSettings(contact_points=("127.0.0.1",)))
    assert isinstance(cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].retry_policy, IdempotentWriteRetryPolicy)


@pytest.mark.cassandra
def test_every_write_of_the_sink_is_marked_idempotent(cassandra_settings):
    sink = CassandraSink(cassandra_settings, "logging", "application_logs", ("host", "day", "hour", "ts", "log_id",
                         "message"), ("host", "day", "hour"))  # fmt: skip
    now = datetime.now(UTC)
    rows = [
        {"host": host, "day": now.date(), "hour": now.hour, "ts": now, "log_id": uuid.uuid4(), "message": "m"}
        for host in ("retry-a", "retry-a", "retry-b")
    ]
    sink.write(rows[:1])  # connects
    sent = []
    real = sink._session.execute_async
    sink._session.execute_async = lambda statement: sent.append(statement) or real(statement)
    try:
        assert sink.write(rows) == 3
    finally:
        sink.close()
    assert sorted(type(s).__name__ for s in sent) == ["BatchStatement", "BoundStatement"]
    assert all(s.is_idempotent for s in sent)
