"""The project's exception family: every error the user can fix, in one place.

    BackstretchError            anything the user can fix: the CLI prints `str()` as one line, exit 2
    ├── ConfigError             a configuration, routine or intents file is unreadable or invalid
    ├── ScriptError             a `--script` file has a malformed line or a line that is no command
    ├── AudioFileError          a WAV file cannot be read or written
    ├── DeviceError             an audio device (speaker or microphone) cannot be opened or used
    ├── VoiceError              a piper voice is unknown, incomplete or damaged
    ├── RecognizerError         a speech recogniser cannot be used
    │   ├── ModelError          a vosk model is missing, not a vosk model, or cannot be loaded
    │   └── SphinxError         pocketsphinx or its bundled model fails
    ├── DownloadError           a voice or model could not be fetched, or was not what was pinned
    ├── ServiceError            the systemd user unit cannot be written or enabled
    └── StateError              the state folder (position, history) cannot be read, or another coach holds it

Third-party errors are caught at the boundary that calls the library and re-raised
as one of these with ``raise ... from``, so the message says what went wrong and how
to fix it. Voice, model and recogniser errors are not DeviceErrors: a damaged voice
is not fixed by choosing another speaker. Every class is defined here, so this tree
is the whole family; this module imports nothing of the project.
"""

from __future__ import annotations


class BackstretchError(Exception):
    """A problem the user can fix; `str()` is the one line shown to them."""

    exit_code = 2


class ConfigError(BackstretchError):
    """A YAML file (configuration, routine, intents) is unreadable or invalid."""


class ScriptError(BackstretchError):
    """A `--script` file has a malformed line or a line that is no command."""


class AudioFileError(BackstretchError):
    """A WAV file cannot be read or written."""


class DeviceError(BackstretchError):
    """An audio device cannot be found, opened or used."""


class VoiceError(BackstretchError):
    """A voice is unknown, incomplete or damaged."""


class RecognizerError(BackstretchError):
    """A speech recogniser cannot be created or fails."""


class ModelError(RecognizerError):
    """A vosk model is missing, is not a vosk model, or cannot be loaded."""


class SphinxError(RecognizerError):
    """The pocketsphinx engine or its model cannot be used."""


class DownloadError(BackstretchError):
    """A file could not be fetched, was not what was pinned, or an archive is unsafe."""


class ServiceError(BackstretchError):
    """The systemd user unit cannot be written, enabled or started."""


class StateError(BackstretchError):
    """The state folder cannot be read, or another coach is using it."""
