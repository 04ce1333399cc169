"""The project's exception family.

    BackstretchError          anything the user can fix; the CLI prints one line, exit 2
    ├── ConfigError           a configuration, routine or intents file is wrong
    ├── ScriptError           a `--script` file is malformed
    └── DeviceError           an audio device or engine cannot be used

Third-party errors are caught at the boundary that calls the library and
re-raised as one of these with ``raise ... from``, so the message always says
what went wrong and how to fix it.
"""

from __future__ import annotations


class BackstretchError(Exception):
    """A problem the user can fix; `str()` is the one line shown to them."""

    exit_code = 2


class ConfigError(BackstretchError):
    """A YAML file (configuration, routine, intents) is unreadable or invalid."""


class ScriptError(BackstretchError):
    """A `--script` file has a malformed line or a line that is no command."""


class DeviceError(BackstretchError):
    """An audio device, voice or recogniser cannot be opened or used."""
