"""What an adapter learns about its instance from the environment.

``SHIPYARD_RUNTIME_DIR``, ``SHIPYARD_COORDINATE`` and ``SHIPYARD_PACKAGE_DIR`` as the
service gets them, the instance's parameters, and the link's own values
(``SHIPYARD_LINK_*``: interface, announcer, action, host, port, password, ...). The
password travels here rather than on the command line unless the package asks for it.
"""

from __future__ import annotations

from shipyard.errors import ShipyardError
from shipyard.link.inventory import Instance


def instance_env(instance: Instance, **extra: str) -> dict[str, str]:
    env = {
        "SHIPYARD_RUNTIME_DIR": str(instance.runtime_dir or ""),
        "SHIPYARD_COORDINATE": instance.coordinate,
        "SHIPYARD_PACKAGE_DIR": str(instance.package_dir or ""),
    }
    env.update(param_env(instance))
    env.update({f"SHIPYARD_LINK_{k.upper()}": v for k, v in extra.items()})
    return env


def param_env(instance: Instance) -> dict[str, str]:
    """The instance's parameters (with ``[service.params]`` defaults), as start gets them:
    ``SHIPYARD_PARAMS`` holds the ``--name=value`` list (shell-quoted, for ``eval set --``
    or ``shlex.split``), and ``SHIPYARD_PARAM_<NAME>`` each value (name upper-cased, other
    characters as ``_``), so an adapter can write a full server config (port, domain)
    before the server's first start. They are not on the adapter's command line, whose
    options are the link protocol."""
    import re
    import shlex

    from shipyard.svc.params import parse_params, with_defaults

    if instance.registration is None:
        return {}
    specs = instance.manifest.service.params if (
        instance.manifest is not None and instance.manifest.service is not None) else ()
    try:
        params = with_defaults(specs, instance.registration.params)
        parsed = parse_params(params)
    except ShipyardError:
        return {}
    env = {"SHIPYARD_PARAMS": shlex.join(params)}
    for name, value in parsed.items():
        env[f"SHIPYARD_PARAM_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"] = value or ""
    return env
