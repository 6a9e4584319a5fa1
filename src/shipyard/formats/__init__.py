"""The formats both ends of a transfer read: the package archive, the channel index and
release, their Ed25519 signatures, the wire models (pydantic) that servers and clients
exchange, and the sealed-secret text form.

They live below ``pkg`` and ``repo`` because the packer, the installer, the uploader and
the publisher all read or write them, and those two stages must not import each other;
the wire models are defined once here so the coordinator and its clients share them.
Nothing here touches a database or another stage: only bytes, files and the base modules.
Public face: :mod:`.archive` (reader, limits, inspection), :mod:`.index` (channel index,
release, paths), :mod:`.signing` (keys, detached signatures), :mod:`.farm` (the build
farm's wire models), :mod:`.fleet` (the fleet's wire models), :mod:`.sealing` (secrets
sealed for a node's X25519 key).
"""
