"""Per-node checks: testinfra runs each once per container (podman://cass1..3)."""

from pathlib import Path

import yaml

# The heap the lab's inventory gives the nodes (the scenario links its group_vars).
LAB_CASSANDRA = Path(__file__).resolve().parents[3] / "inventories/lab/group_vars/cassandra/cassandra.yml"
HEAP_MB = int(yaml.safe_load(LAB_CASSANDRA.read_text())["cassandra_cluster_heap_mb"])


def test_cassandra_is_active_and_enabled(host):
    service = host.service("cassandra")
    assert service.is_running
    assert service.is_enabled


def test_runs_as_the_cassandra_user_with_java_17(host):
    procs = host.process.filter(comm="java")
    assert procs, "no java process"
    assert {p.user for p in procs} == {"cassandra"}
    assert 'version "17' in host.run("java -version").stderr


def test_tools_on_path(host):
    assert host.exists("nodetool")
    assert host.exists("cqlsh")


def test_configuration_is_ours(host):
    conf = host.file("/etc/cassandra/cassandra.yaml")
    assert conf.user == "root" and conf.group == "cassandra" and conf.mode == 0o640
    text = conf.content_string
    assert "endpoint_snitch: GossipingPropertyFileSnitch" in text
    assert "authenticator: PasswordAuthenticator" in text
    assert "num_tokens: 16" in text
    assert "allocate_tokens_for_local_replication_factor: 3" in text
    assert f"-Xmx{HEAP_MB}M" in host.file("/etc/cassandra/jvm-server.options").content_string
    # Storage-attached indexes build their segments within an eighth of the heap (1 GiB by default).
    assert f"\n  segment_write_buffer_size: {min(HEAP_MB // 8, 1024)}MiB" in text


def test_maintenance_jobs_are_scheduled_with_a_lock(host):
    cron = host.file("/etc/cron.d/cassandra-maintenance").content_string
    assert "/usr/local/sbin/cassandra-maintenance repair" in cron
    assert "/usr/local/sbin/cassandra-maintenance cleanup" in cron
    assert "flock -n" in host.file("/usr/local/sbin/cassandra-maintenance").content_string
