"""The formats both ends of a transfer read: the package archive, the channel index and
release, their Ed25519 signatures.

They live below ``pkg`` and ``repo`` because the packer, the installer, the uploader and
the publisher all read or write them, and those two stages must not import each other.
Nothing here touches a database or another stage: only bytes, files and the base modules.
Public face: :mod:`.archive` (reader, limits, inspection), :mod:`.index` (channel index,
release, paths), :mod:`.signing` (keys, detached signatures).
"""
