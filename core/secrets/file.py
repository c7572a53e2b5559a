"""Secrets as files, for local mode: ``<dir>/<name>`` holds the value of ``{secret: name}``.

Trailing line breaks are dropped (``echo value > file`` works). Files should be mode 0600 and the
folder 0700; a file others can read is used, with a warning naming the file (never its value).
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from core.errors import InvalidSpecError, UnavailableError

log = logging.getLogger("train.secrets")


class FileSecretStore:
    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, name: str) -> Path | None:
        """Where ``name`` is kept; None for a name that would leave the folder."""
        root = self.directory.resolve()
        path = (root / name).resolve()
        return path if root in path.parents else None

    def resolve(self, name: str) -> str:
        path = self.path(name)
        if path is None:
            raise InvalidSpecError(f"secret name '{name}' leaves the secrets folder")
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise FileNotFoundError(name)
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise InvalidSpecError(f"secret '{name}' is not set (no file {self.directory / name})") from exc
        except PermissionError as exc:
            raise InvalidSpecError(f"secret '{name}' cannot be read by Train (file {self.directory / name})") from exc
        except UnicodeDecodeError as exc:
            raise InvalidSpecError(f"secret '{name}' is not UTF-8 text") from exc
        except OSError as exc:
            raise UnavailableError(f"the secrets folder {self.directory} could not be read; retry later") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("secret file %s can be read by other users; chmod 600 it", path)
        return text.rstrip("\r\n")
