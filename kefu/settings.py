"""Configuration: the only module that reads ``KEFU_*`` environment variables.

Settings are built once at the edge (``kefu.cli`` or a test) and passed in; nothing
below reads the environment or patches a module global.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr("")
    time_zone: str = "Asia/Shanghai"
    base_url: str = "http://127.0.0.1:8000"
    # Pages of other origins the chat widget is embedded on (the exchange's site and
    # app web views), as a JSON list: '["https://www.kx-exchange.example"]'. The
    # widget's screenshot uploads and downloads are allowed from them (CORS).
    widget_origins: list[str] = Field(default_factory=list)
    # Email: the SMTP listener kefu runs, and the relay it sends through.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    run_smtp: bool = True
    mail_domain: str = "kx-exchange.example"
    support_address: str = "support@kx-exchange.example"
    support_name: str = "KX 交易所客服"
    # The authserv-id our MTA writes in Authentication-Results (RFC 8601). Only headers
    # with it are believed; unset, SPF/DKIM/DMARC verdicts from mail are ignored, since a
    # sender can write that header too.
    mta_authserv_id: str | None = None
    smtp_relay_host: str | None = None
    smtp_relay_port: int = 25
    # DKIM signing of outgoing mail (RFC 6376): the selector published in DNS as
    # <selector>._domainkey.<mail_domain>, and the PEM private key (RSA or Ed25519).
    dkim_selector: str | None = None
    dkim_private_key_file: Path | None = None
    max_inbound_email_bytes: int = 35 * 1024 * 1024
    # IMAP polling of a mailbox at a provider (workers.imap), when imap_host is set.
    imap_host: str | None = None
    imap_port: int = 993
    imap_ssl: bool = True
    imap_user: str = ""
    imap_password: SecretStr = SecretStr("")
    imap_folder: str = "INBOX"
    imap_address: str | None = None  # the mailbox's address, to find its Inbox and team
    imap_poll_seconds: float = 30.0

    # Identity tokens signed by the exchange's backend for contacts (HS256 or ES256).
    contact_jwt_algorithm: Literal["HS256", "ES256"] = "HS256"
    contact_jwt_key: SecretStr | None = None
    contact_jwt_audience: str = "kefu"

    run_workers: bool = True
    worker_poll_seconds: float = 0.5
    job_lease_seconds: int = 60
    max_request_bytes: int = 1_000_000
    max_upload_bytes: int = 20 * 1024 * 1024
    cookie_secure: bool = False
    session_idle_seconds: int = 12 * 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 15 * 60
    login_rate_per_minute: int = 20
    # How often `kefu serve` runs a full garbage collection (kefu/infra/collector.py);
    # 0 leaves it to CPython, which under load pauses the server every second or two.
    gc_full_collection_seconds: float = 300.0
    log_level: str = "INFO"
    log_json: bool = True
    default_locale: Literal["zh-CN", "en"] = "zh-CN"
    extra_fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("widget_origins")
    @classmethod
    def _origins_only(cls, origins: list[str]) -> list[str]:
        """An origin is a scheme, a host and maybe a port, as a browser sends it."""
        out = []
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an origin: {origin!r}")
            if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
                raise ValueError(f"an origin has no path, query or user: {origin!r}")
            out.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return out

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'kefu.db'}"
        return self

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def resolved_secret_key(self) -> str:
        """The configured secret, or one generated once and kept in the data dir.

        The embedded default must work after `make run` with no configuration, and
        sessions must survive a restart, so the generated key is persisted.
        """
        configured = self.secret_key.get_secret_value()
        if configured:
            return configured
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key
