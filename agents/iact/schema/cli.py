"""`iact-schema`: apply and verify the logging schema, and bootstrap authentication.

Every subcommand prints one line per step and ends with `result: changed` or `result:
unchanged`, which is what Ansible reads to report change; errors exit 2 with what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from iact.cassandra.session import CassandraAuthFailed, CassandraUnavailable, open_session
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.schema import auth
from iact.schema.clients import connected_clients, report_plaintext
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams, parse_replication
from iact.schema.verify import verify_schema


def _say(line: str) -> None:
    print(line, flush=True)


def _env_secret(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SettingsError(f"set the environment variable {name} (kept out of the command line on purpose)")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iact-schema", description=__doc__.splitlines()[0])
    p.add_argument("--contact-points", help="comma-separated nodes (default: $IACT_CASSANDRA_HOSTS)")
    p.add_argument("--port", type=int, help="native port (default: $IACT_CASSANDRA_PORT or 9042)")
    p.add_argument("--ca-file", help="CA bundle for client TLS (default: $IACT_CASSANDRA_CA_FILE)")
    p.add_argument("--cert-file", help="client cert for require_client_auth (default: $IACT_CASSANDRA_CERT_FILE)")
    p.add_argument("--key-file", help="key of --cert-file (default: $IACT_CASSANDRA_KEY_FILE)")
    sub = p.add_subparsers(dest="command", required=True)

    def schema_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--keyspace", default="logging")
        sp.add_argument("--rf", default="dc1:3", help="replication per datacenter, e.g. dc1:3,dc2:3")
        sp.add_argument("--ttl-days", type=int, default=90)
        sp.add_argument("--hint-window-hours", type=int, default=3)
        sp.add_argument("--compression", default="LZ4Compressor", choices=["LZ4Compressor", "ZstdCompressor"])

    apply_p = sub.add_parser("apply", help="create or update the keyspace and tables (safe to run twice)")
    schema_args(apply_p)
    apply_p.add_argument("--cql-dir", help="directory of NNNN_name.cql files (default: the checkout's cql/)")
    schema_args(sub.add_parser("verify", help="check the live schema against the parameters"))

    clients_p = sub.add_parser("clients", help="list each node's client connections that do not use TLS")
    clients_p.add_argument("--require-tls", action="store_true", help="exit 1 while any client is in plaintext")
    auth_p = sub.add_parser("auth", help="bootstrap authentication")
    auth_sub = auth_p.add_subparsers(dest="auth_command", required=True)
    prep = auth_sub.add_parser("prepare", help="replicate system_auth before passwords are required")
    prep.add_argument("--rf", default="dc1:3")
    boot = auth_sub.add_parser("bootstrap", help="create the superuser ($IACT_SUPERUSER_PASSWORD), disable 'cassandra'")
    boot.add_argument("--superuser", required=True)
    roles = auth_sub.add_parser("roles", help="writer ($IACT_WRITER_PASSWORD) and reader ($IACT_READER_PASSWORD) roles")
    roles.add_argument("--keyspace", default="logging")
    roles.add_argument("--writer", required=True)
    roles.add_argument("--reader", required=True)
    roles.add_argument("--alerter", help="iact-alert's role ($IACT_ALERTER_PASSWORD): reads logs, writes alert state")
    maint = auth_sub.add_parser(
        "maintainer", help="the nodes' maintenance role ($IACT_MAINTAINER_PASSWORD): the lock table only"
    )
    maint.add_argument("--keyspace", default="logging")
    maint.add_argument("--role", required=True)
    return p


def _params(args: argparse.Namespace) -> SchemaParams:
    return SchemaParams(
        keyspace=args.keyspace,
        replication=parse_replication(args.rf),
        ttl_days=args.ttl_days,
        hint_window_hours=args.hint_window_hours,
        compression=args.compression,
    )


def run(args: argparse.Namespace) -> int:
    """Execute one parsed command; returns the exit status."""
    settings = ConnectionSettings.from_env(
        args.contact_points, args.port, ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file
    )
    changed = False
    if args.command == "apply":
        params = _params(args)
        migrations = load_migrations(Path(args.cql_dir) if args.cql_dir else find_cql_dir(), params)
        with open_session(settings) as session:
            changed = bool(apply_migrations(session, params, migrations, _say))
            problems = verify_schema(session, params)
        if problems:
            for problem in problems:
                _say(f"problem: {problem}")
            return 1
    elif args.command == "verify":
        with open_session(settings) as session:
            problems = verify_schema(session, _params(args))
        for problem in problems:
            _say(f"problem: {problem}")
        _say("schema: ok" if not problems else f"schema: {len(problems)} problem(s)")
        return 1 if problems else 0
    elif args.command == "clients":
        with open_session(settings) as session:
            plaintext = report_plaintext(connected_clients(session), _say)
        return 1 if plaintext and args.require_tls else 0
    elif args.auth_command == "prepare":
        with open_session(settings) as session:
            changed = auth.prepare_system_keyspaces(session, parse_replication(args.rf), _say)
    elif args.auth_command == "bootstrap":
        changed = auth.bootstrap_superuser(settings, args.superuser, _env_secret("IACT_SUPERUSER_PASSWORD"), _say)
    elif args.auth_command == "roles":
        writer_pw, reader_pw = _env_secret("IACT_WRITER_PASSWORD"), _env_secret("IACT_READER_PASSWORD")
        with open_session(settings) as session:
            changed |= auth.ensure_login_role(session, settings, args.writer, writer_pw, _say)
            changed |= auth.ensure_login_role(session, settings, args.reader, reader_pw, _say)
            changed |= auth.ensure_grants(session, args.writer, args.keyspace, auth.WRITER_PERMISSIONS, _say)
            changed |= auth.ensure_grants(session, args.reader, args.keyspace, auth.READER_PERMISSIONS, _say)
            changed |= auth.ensure_table_grants(session, args.reader, "system_views", auth.READER_VIEWS, "SELECT", _say)
            changed |= auth.ensure_table_grants(session, args.reader, args.keyspace, auth.READER_WRITES, "MODIFY", _say)
            if args.alerter:
                alerter_pw = _env_secret("IACT_ALERTER_PASSWORD")
                changed |= auth.ensure_login_role(session, settings, args.alerter, alerter_pw, _say)
                changed |= auth.ensure_grants(session, args.alerter, args.keyspace, auth.ALERTER_PERMISSIONS, _say)
                changed |= auth.ensure_table_grants(
                    session, args.alerter, args.keyspace, auth.ALERTER_TABLES, "MODIFY", _say
                )
    elif args.auth_command == "maintainer":
        password = _env_secret("IACT_MAINTAINER_PASSWORD")
        with open_session(settings) as session:
            changed = auth.ensure_maintainer(session, settings, args.role, password, args.keyspace, _say)
    _say(f"result: {'changed' if changed else 'unchanged'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (SettingsError, CassandraUnavailable, CassandraAuthFailed) as exc:
        print(f"iact-schema: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
