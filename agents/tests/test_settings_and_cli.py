import pytest

from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.schema.cli import main


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("IACT_CASSANDRA_HOSTS", "a, b")
    monkeypatch.setenv("IACT_CASSANDRA_USERNAME", "u")
    monkeypatch.setenv("IACT_CASSANDRA_PASSWORD", "s3cret-pw")
    s = ConnectionSettings.from_env()
    assert s.contact_points == ("a", "b") and s.port == 9042 and s.username == "u"
    assert "s3cret-pw" not in repr(s)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"contact_points": ()}, "IACT_CASSANDRA_HOSTS"),
        ({"contact_points": ("a",), "port": 0}, "not a TCP port"),
        ({"contact_points": ("a",), "username": "u"}, "needs a password"),
        ({"contact_points": ("a",), "ca_file": "/nonexistent.pem"}, "does not exist"),
    ],
)
def test_bad_settings_say_what_to_set(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        ConnectionSettings(**kwargs)


def test_cli_unreachable_cassandra_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.delenv("IACT_CASSANDRA_USERNAME", raising=False)
    monkeypatch.delenv("IACT_CASSANDRA_PASSWORD", raising=False)
    # Port 1 on loopback refuses at once: nothing listens there.
    assert main(["--contact-points", "127.0.0.1", "--port", "1", "verify"]) == 2
    err = capsys.readouterr().err
    assert "no Cassandra node answered at 127.0.0.1 port 1" in err
    assert "nodetool status" in err


def test_cli_missing_secret_names_the_variable(capsys, monkeypatch):
    monkeypatch.delenv("IACT_SUPERUSER_PASSWORD", raising=False)
    assert main(["--contact-points", "127.0.0.1", "auth", "bootstrap", "--superuser", "admin"]) == 2
    assert "IACT_SUPERUSER_PASSWORD" in capsys.readouterr().err
