"""Retry timed-out writes that are safe to repeat, on another coordinator.

The driver's default policy gives up on a write timeout unless the write went through the batch
log, because in general it cannot know whether repeating a write is harmless. The agents' writes
are: every row carries its own id in the primary key and the same values on each attempt, so a
repeat overwrites the row with itself. During a rolling restart a coordinator that is busy with
a neighbour's hints, or a JVM that is still warming up, times out a write now and then; one more
try on the next host absorbs that instead of sending the rows to the disk spool.
"""

from __future__ import annotations

from typing import Any

from cassandra.policies import RetryPolicy


class IdempotentWriteRetryPolicy(RetryPolicy):
    """The default policy, plus up to `write_retries` retries of writes marked idempotent."""

    def __init__(self, write_retries: int = 2) -> None:
        self.write_retries = write_retries

    def on_write_timeout(
        self, query: Any, consistency: Any, write_type: Any, required_responses: int, received_responses: int,
        retry_num: int,
    ) -> tuple[int, Any]:  # fmt: skip
        """Another coordinator, same consistency: a timeout says one node was slow, not that the data is bad."""
        if getattr(query, "is_idempotent", False) and retry_num < self.write_retries:
            return self.RETRY_NEXT_HOST, consistency
        return super().on_write_timeout(
            query, consistency, write_type, required_responses, received_responses, retry_num
        )
