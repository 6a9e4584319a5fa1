"""``shipyard.toml``: the package's manifest and build recipe, validated strictly.

Layer: base (docs/architecture.md). The face every stage imports: the data
(:mod:`.model`), ``parse_manifest``/``load_manifest`` (:mod:`.parse`) and the small TOML
schema checker the parser is built from (:mod:`.schema`).
"""

from shipyard.manifest.model import (
    MANIFEST_NAME,
    ON_CHANGE,
    PARAM_TYPES,
    PASSWORD_VIA,
    BuildSpec,
    LinkAccept,
    LinkAnnounce,
    Manifest,
    ParamSpec,
    ServiceSpec,
    check_param_value,
)
from shipyard.manifest.parse import load_manifest, parse_manifest

__all__ = [
    "MANIFEST_NAME", "ON_CHANGE", "PARAM_TYPES", "PASSWORD_VIA", "BuildSpec", "LinkAccept",
    "LinkAnnounce", "Manifest", "ParamSpec", "ServiceSpec", "check_param_value",
    "load_manifest", "parse_manifest",
]
