"""Application logs to Cassandra: `CassandraHandler`, `JsonFormatter`, request context."""

from iact.applog.context import RequestContextFilter, RequestContextMiddleware
from iact.applog.handler import CassandraHandler
from iact.applog.jsonformat import JsonFormatter

__all__ = ["CassandraHandler", "JsonFormatter", "RequestContextFilter", "RequestContextMiddleware"]
