"""Settings from the environment (prefix ``DACS_``), see DESIGN.md §3."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


def _hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value or "127.0.0.1", default_port
    return host.strip("[]"), int(port)


@dataclass
class Settings:
    data_dir: Path = Path("./dacs-data")
    database_url: str = ""
    broker_url: Optional[str] = None
    http: tuple[str, int] = ("127.0.0.1", 8080)
    dicom: tuple[str, int] = ("127.0.0.1", 11112)
    ae_title: str = "DACS"
    mllp: tuple[str, int] = ("127.0.0.1", 2575)
    max_request_bytes: int = 50 * 1024 * 1024
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Optional[dict] = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("DACS_DATA_DIR", "./dacs-data"))
        return cls(
            data_dir=data_dir,
            database_url=env.get("DACS_DATABASE_URL") or f"sqlite:///{(data_dir / 'dacs.sqlite').resolve()}",
            broker_url=env.get("DACS_BROKER_URL") or None,
            http=_hostport(env.get("DACS_HTTP", "127.0.0.1:8080"), 8080),
            dicom=_hostport(env.get("DACS_DICOM", "127.0.0.1:11112"), 11112),
            ae_title=env.get("DACS_AE_TITLE", "DACS"),
            mllp=_hostport(env.get("DACS_MLLP", "127.0.0.1:2575"), 2575),
            max_request_bytes=int(env.get("DACS_MAX_REQUEST_BYTES", 50 * 1024 * 1024)),
        )

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"
