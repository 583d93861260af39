"""Where the daemon's control socket is, worked out as lestash-syncd does.

In order (docs/protocol.md, "Socket"): the path given (--socket); else
`[control] socket` in sync.toml ($XDG_CONFIG_HOME/lestash/sync.toml, or
~/.config/lestash/sync.toml, when it exists; or the file given); else
$XDG_RUNTIME_DIR/lestash/syncd.sock; else /tmp/lestash-UID/syncd.sock when
XDG_RUNTIME_DIR is unset. The rules for "~/" and relative paths are the
daemon's (src/daemon/config.cpp), so both sides agree on one path.
"""

from __future__ import annotations

import os
import pwd
import tomllib
from pathlib import Path

from .errors import SocketConfigError

# sun_path in <sys/un.h>: a socket path must be shorter than this.
_MAX_SOCKET_PATH = 108


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None  # set but empty counts as unset, as in the daemon


def _home() -> str:
    home = _env("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        raise SocketConfigError(
            'cannot expand "~": HOME is not set and the user has no home directory'
        ) from None


def default_config_path() -> Path:
    """The sync.toml lestash-syncd reads when it is given no --config."""
    config_home = _env("XDG_CONFIG_HOME")
    base = (
        Path(config_home) / "lestash"
        if config_home
        else Path(_env("HOME") or ".") / ".config/lestash"
    )
    return base / "sync.toml"


def default_socket_path() -> str:
    """The socket used when neither --socket nor sync.toml names one."""
    runtime = _env("XDG_RUNTIME_DIR")
    if runtime:
        return f"{runtime}/lestash/syncd.sock"
    return f"/tmp/lestash-{os.getuid()}/syncd.sock"


def _checked(value: str, where: str, from_file: bool) -> str:
    if not value:
        raise SocketConfigError(
            f"{where}: control.socket is empty — give a path, or leave the key out for the "
            "default"
        )
    if value.startswith("~") and value != "~" and not value.startswith("~/"):
        raise SocketConfigError(
            f'{where}: control.socket = "{value}": only "~/" (your own home) is expanded — '
            "write the full path"
        )
    path = _home() + value[1:] if value == "~" or value.startswith("~/") else value
    if from_file and not os.path.isabs(path):
        raise SocketConfigError(
            f'{where}: control.socket = "{value}" is relative — write an absolute path or one '
            'starting with "~/"'
        )
    if len(path.encode()) >= _MAX_SOCKET_PATH:
        raise SocketConfigError(
            f'{where}: control.socket "{path}" is {len(path.encode())} bytes long; a Unix socket '
            f"path must be shorter than {_MAX_SOCKET_PATH} — choose a shorter one"
        )
    return path


def _socket_from_config(config: Path) -> str | None:
    try:
        with open(config, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise SocketConfigError(
            f"config file {config} does not exist — give the TOML file"
        ) from None
    except OSError as e:
        raise SocketConfigError(
            f"cannot read config file {config}: {e.strerror} — check its permissions"
        ) from None
    except tomllib.TOMLDecodeError as e:
        # lestash-syncd refuses such a file too: it is not running with it.
        raise SocketConfigError(
            f"{config}: not valid TOML ({e}) — fix it, or give --socket"
        ) from None
    control = document.get("control", {})
    if not isinstance(control, dict):
        raise SocketConfigError(f'{config}: "control" must be a section ([control])')
    value = control.get("socket")
    if value is None:
        return None
    if not isinstance(value, str):
        raise SocketConfigError(f"{config}: control.socket must be a string in double quotes")
    return _checked(value, str(config), from_file=True)


def resolve_socket_path(
    socket: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The control socket's path: `socket` if given, else sync.toml's, else the default.

    `config` is the sync.toml to read (lestash-syncd's --config); without it the
    default one is read when it exists. Raises SocketConfigError when the file
    or the path in it is unusable, with what to change.
    """
    if socket is not None:
        return _checked(os.fspath(socket), "--socket", from_file=False)
    if config is not None:
        path = (
            Path(_home() + os.fspath(config)[1:])
            if os.fspath(config).startswith("~/")
            else Path(config)
        )
    else:
        path = default_config_path()
        if not path.exists():
            return default_socket_path()
    return _socket_from_config(path) or default_socket_path()
