"""The coordinator's HTTP API under ``/api/``, one router per audience: anonymous reads
(:mod:`.read`), the worker protocol (:mod:`.worker`) and requests and operator actions
(:mod:`.control`); :mod:`.auth` says which token roles each route accepts."""
