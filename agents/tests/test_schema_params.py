import pytest

from iact.cassandra.settings import SettingsError
from iact.schema.params import SchemaParams, parse_replication


@pytest.mark.parametrize(("ttl", "window"), [(90, 3), (30, 1), (1, 1), (365, 13), (60, 2)])
def test_twcs_window_gives_about_30_windows(ttl, window):
    assert SchemaParams(ttl_days=ttl).twcs_window_days == window


def test_gc_grace_is_the_hint_window_not_ten_days():
    assert SchemaParams(hint_window_hours=3).gc_grace_seconds == 10800


def test_replication_literal_is_network_topology_per_dc():
    p = SchemaParams(replication=(("dc1", 3), ("dc2", 2)))
    assert p.replication_literal == "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"


def test_parse_replication():
    assert parse_replication("dc1:3, dc2:1") == (("dc1", 3), ("dc2", 1))


@pytest.mark.parametrize("bad", ["dc1", "dc1:x", "dc1:3,dc2"])
def test_parse_replication_names_the_bad_part(bad):
    with pytest.raises(SettingsError, match="is not DC:N"):
        parse_replication(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keyspace": "Logging-1"}, "not a valid name"),
        ({"ttl_days": 0}, "--ttl-days"),
        ({"replication": (("dc1", 0),)}, "--rf"),
        ({"replication": ()}, "--rf"),
        ({"compression": "Snappy"}, "not one of"),
        ({"hint_window_hours": 0}, "--hint-window-hours"),
    ],
)
def test_invalid_params_say_what_to_pass(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        SchemaParams(**kwargs)
