"""Which settings hold secrets, how they are shown (masked unless asked for), and the
warning for a config file that holds one yet others may read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.config.settings import Settings

# Settings whose value is a secret, and settings that are URLs which may carry a password:
# shown masked unless asked for (config show --show-secrets).
SECRET_KEYS = ("farm.token", "smtp.password")
URL_KEYS = ("farm.db", "repo.db")
MASK = "***"


def url_password_masked(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (SQLAlchemy's own rendering,
    so every URL form it accepts is covered); a string it cannot parse is kept only when it
    has no ``user:password@`` part."""
    if not url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        import re

        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def masked(key: str, value: Any) -> Any:
    """A setting's value as it may be shown: secrets as ``***`` (when set), URL passwords
    as ``***``."""
    if key in SECRET_KEYS:
        return MASK if value else value
    if key in URL_KEYS and isinstance(value, str):
        return url_password_masked(value)
    return value


def holds_secret(key: str, value: Any) -> bool:
    if key in SECRET_KEYS:
        return bool(str(value or "").strip())
    if key in URL_KEYS and isinstance(value, str):
        return masked(key, value) != value
    return False


def exposed_secret_files(settings: Settings) -> list[str]:
    """Warnings for config files that hold a secret yet are group- or world-readable."""
    path = settings.config_file
    if path is None:
        return []
    secrets = [key for key, (raw, source) in settings._raw.items()
               if source == str(path) and holds_secret(key, raw)]
    if not secrets:
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & 0o044:
        return []
    who = ("group and others" if mode & 0o044 == 0o044
           else "group" if mode & 0o040 else "others")
    return [f"{path} holds {', '.join(sorted(secrets))} and is readable by {who} "
            f"(mode {mode & 0o777:04o}): chmod 600 {path}"]
