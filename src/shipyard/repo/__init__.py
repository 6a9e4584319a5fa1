"""The signed package repository: its layout, the accepted queue and the publisher run.

Layer (docs/architecture.md): beside ``pkg`` (neither imports the other: both read the
archive, index and signing formats from :mod:`shipyard.formats`), above ``db``, below
``svc``. The farm's publisher and the web pages call it through this face.

Public face: :mod:`.layout` (``init_repository``, ``open_repository``), :mod:`.upload`
(``upload``, ``queued``), :mod:`.publish` (``publish``: one publisher run, which uses
:mod:`.recovery`, :mod:`.intake` and :mod:`.generation`; ``publications``: the runs'
record), :mod:`.channels` (``promote``, ``read_published``, ``read_generation``;
``published_in`` and ``first_listed`` for a repository directory), :mod:`.activity` (script
activity rows), :mod:`.keys` (``keygen``), :mod:`.store` (the repository's database).
"""
