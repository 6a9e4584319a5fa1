"""Effective settings: defaults, the ini file, the environment and flags, in that order.

Every value remembers where it came from, so ``shipyard config show`` can answer the
operator's first question ("why is it looking *there*?"). Roots follow DESIGN.md:
``SHIPYARD_HOME`` puts everything under one directory; without it an ordinary user gets
``~/.local/share/shipyard`` and root gets the FHS paths.

The config file is ini (``[section] key = value``); the environment variable of
``section.key`` is ``SHIPYARD_SECTION_KEY``; flags override both.

Layer: base. The package's parts: the table of settings (:mod:`.table`), secrets and how
they are shown (:mod:`.masking`), typed sections (:mod:`.sections`) and the resolution
itself (:mod:`.settings`); every name is imported from here.
"""

from shipyard.config.masking import (
    MASK,
    SECRET_KEYS,
    URL_KEYS,
    exposed_secret_files,
    holds_secret,
    masked,
    url_password_masked,
)
from shipyard.config.sections import (
    SECTIONS,
    FarmSection,
    FleetSection,
    LinkSection,
    NodeSection,
    PathsSection,
    PkgSection,
    RepoSection,
    SmtpSection,
    SvcSection,
    WebSection,
    _Section,
)
from shipyard.config.settings import Settings, load_settings
from shipyard.config.table import BY_KEY, RETIRED, SETTINGS, Getter, Setting

__all__ = [
    "BY_KEY", "MASK", "RETIRED", "SECRET_KEYS", "SECTIONS", "SETTINGS", "URL_KEYS",
    "FarmSection", "FleetSection", "Getter", "LinkSection", "NodeSection", "PathsSection",
    "PkgSection", "RepoSection", "Setting", "Settings", "SmtpSection", "SvcSection",
    "WebSection", "_Section", "exposed_secret_files", "holds_secret", "load_settings",
    "masked", "url_password_masked",
]
