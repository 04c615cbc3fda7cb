"""Reading YAML configuration files: typed getters that name the key in every error.

Shared by the agents' configuration modules so that every file reports mistakes the same way:
the dotted key, what was expected, and what to write instead.
"""

from __future__ import annotations

from typing import Any

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1024**3, "gib": 1024**3}


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key and the fix."""


def parse_size(value: object, key: str) -> int:
    """'256MiB', '64k' or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(digits) :]
    if not digits or unit not in _UNITS:
        raise ConfigError(f"{key}: {value!r} is not a size; write bytes as a number or with a unit, e.g. 256MiB")
    return int(float(digits) * _UNITS[unit])


class Section:
    """Reads one mapping, remembering which keys were used so unknown keys can be reported."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the file'}: expected a mapping of keys, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        """The dotted path of a key in this section."""
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The value of a key, type-checked; the default when absent."""
        self.used.add(name)
        value = self.data.get(name, default)
        if value is None or value is default:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.key(name)}: expected {want}, got {value!r}")
        return value

    def positive(self, name: str, default: float) -> float:
        """A positive number of seconds."""
        value = self.get(name, float, default)
        if value <= 0:
            raise ConfigError(f"{self.key(name)}: must be a positive number of seconds, got {value}")
        return value

    def count(self, name: str, default: int, minimum: int = 1) -> int:
        """A whole number at least `minimum`."""
        value = self.get(name, int, default)
        if value < minimum:
            raise ConfigError(f"{self.key(name)}: must be at least {minimum}, got {value}")
        return value

    def size(self, name: str, default: int, minimum: int) -> int:
        """A size in bytes ('256MiB', '64k' or a number)."""
        self.used.add(name)
        value = parse_size(self.data.get(name, default), self.key(name))
        if value < minimum:
            raise ConfigError(f"{self.key(name)}: must be at least {minimum} bytes, got {value}")
        return value

    def section(self, name: str) -> Section:
        """A nested mapping."""
        self.used.add(name)
        return Section(self.data.get(name), self.key(name))

    def done(self) -> None:
        """Fail on keys nobody asked for (typos, wrong indentation)."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.key(unknown[0])}: unknown key; known keys here are {', '.join(sorted(self.used))} "
                "(check the spelling and the indentation)"
            )
