"""``shipyard.toml``: the package's manifest and build recipe, validated strictly.

Layer: base (docs/architecture.md). The face every stage imports: the data
(:mod:`.model`), ``parse_manifest``/``load_manifest`` (:mod:`.parse`) and the small TOML
schema checker the parser is built from (:mod:`.schema`).
"""

from shipyard.manifest import model
from shipyard.manifest.model import *  # noqa: F403  (the data, as model.__all__ lists it)
from shipyard.manifest.parse import load_manifest, parse_manifest

__all__ = [*model.__all__, "load_manifest", "parse_manifest"]
