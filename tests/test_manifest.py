"""Property tests of ``parse_manifest``: whatever the input, the only failure is a one-line
ManifestError naming the file; valid manifests parse to what they say."""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.coords import PackageCoord, Requirement
from shipyard.errors import ManifestError
from shipyard.manifest import ParamSpec, parse_manifest

PROPS = settings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
SOURCE = "pkgs/x/shipyard.toml"

KEYS = ["package", "build", "service", "link", "group", "id", "version", "summary",
        "requires", "command", "env", "timeout", "network", "start", "stop", "exec", "user",
        "announce", "accept", "interface", "adapter", "generate", "port", "hostname_prefix",
        "password", "maintainer", "colour"]
scalars = st.one_of(
    st.text(max_size=12), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["org.example", "x", "1.0", "random", "../etc", "/abs", "a:b:>=1",
                     "bin/start", "", "~", "org.example:lib:>=1,<2"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)


def _valid_package() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({
        "group": st.sampled_from(["org.example", "com.comoyo", "a.b.c"]),
        "id": st.sampled_from(["hello", "id-cassandra", "x.y_z"]),
        "version": st.sampled_from(["1.0", "2.1.1", "1.0~rc1", "3+build.4"]),
    }, optional={
        "summary": st.text(max_size=20),
        "requires": st.lists(st.sampled_from(["org.example:lib", "org.example:lib:>=1.0,<2",
                                              "a.b:c:==1"]), max_size=2),
    })


def _check(text: str) -> None:
    try:
        parse_manifest(text, SOURCE)
    except ManifestError as exc:
        assert exc.message.startswith(SOURCE + ": "), exc.message
        assert "\n" not in exc.message


@PROPS
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_manifest_error(text: str) -> None:
    _check(text)


@PROPS
@given(documents)
def test_toml_documents_only_raise_manifest_error(document: dict) -> None:
    _check(tomli_w.dumps(document))


@PROPS
@given(documents, _valid_package())
def test_valid_package_with_random_extras(document: dict, package: dict) -> None:
    document = {**document, "package": {**package, **(document.get("package") or {})}
                if isinstance(document.get("package"), dict) else package}
    _check(tomli_w.dumps(document))


@PROPS
@given(_valid_package())
def test_valid_manifests_parse_to_their_coordinate(package: dict) -> None:
    manifest = parse_manifest(tomli_w.dumps({"package": package}), SOURCE)
    assert manifest.coord == PackageCoord(package["group"], package["id"], package["version"])
    assert [str(r) for r in manifest.requires] == [
        str(Requirement.parse(r)) for r in package.get("requires", [])]


def test_build_network_is_a_boolean_that_defaults_to_off() -> None:
    head = ('[package]\ngroup = "org.example"\nid = "x"\nversion = "1.0"\n'
            '[build]\ncommand = "true"\n')
    build = parse_manifest(head, SOURCE).build
    assert build is not None and build.network is False
    build = parse_manifest(head + "network = true\n", SOURCE).build
    assert build is not None and build.network is True
    try:
        parse_manifest(head + 'network = "yes"\n', SOURCE)
    except ManifestError as exc:
        assert exc.message == f"{SOURCE}: build.network: expected a boolean, got a string"
    else:
        raise AssertionError("network = \"yes\" was accepted")


# ---------------------------------------------------------------------------------------
# Issue 13: [service.params], [service] reload, [[link.accept]] password_via/on_change,
# generate.port from a parameter.

HEAD = '[package]\ngroup = "org.example"\nid = "x"\nversion = "1.0"\n'
SERVICE = '[service]\nexec = ["bin/x"]\n'


def test_service_params_reload_and_link_options_parse() -> None:
    manifest = parse_manifest(
        HEAD + SERVICE + 'reload = "signal:hup"\n'
        '[service.params]\nport = { type = "port", default = 5222 }\n'
        'domain = { type = "string" }\nworkers = { type = "int", default = "4" }\n'
        '[[link.announce]]\ninterface = "chat"\nadapter = "a"\n'
        'generate = { port = "{param.port}" }\n'
        '[[link.accept]]\ninterface = "chat"\nadapter = "b"\non_change = "reload"\n'
        'password_via = "argv"\n')
    assert manifest.service is not None
    assert manifest.service.reload == "signal:HUP"
    assert manifest.service.params == (ParamSpec("port", "port", "5222"),
                                       ParamSpec("domain", "string", None),
                                       ParamSpec("workers", "int", "4"))
    assert manifest.announces[0].port_param == "port" and manifest.announces[0].port is None
    accept = manifest.accepts[0]
    assert (accept.on_change, accept.password_via) == ("reload", "argv")
    plain = parse_manifest(HEAD + '[[link.accept]]\ninterface = "chat"\nadapter = "b"\n')
    assert (plain.accepts[0].on_change, plain.accepts[0].password_via) == ("none", "env")


@pytest.mark.parametrize(("text", "message"), [
    (SERVICE + '[service.params]\nport = { type = "port", default = 70000 }\n',
     "service.params.port.default: expected a port from 1 to 65535, got 70000"),
    (SERVICE + '[service.params]\nport = { type = "port", default = "http" }\n',
     "service.params.port.default: expected an integer (a port), got 'http'"),
    (SERVICE + '[service.params]\nport = { type = "float" }\n',
     "service.params.port.type: expected one of string, int, port, got 'float'"),
    (SERVICE + '[service.params]\nport = { kind = "port" }\n',
     "service.params.port.kind: unknown key"),
    (SERVICE + '[service.params]\nport = { default = true }\n',
     "service.params.port.default: expected a string or an integer, got a boolean"),
    (SERVICE + 'reload = "signal:NOPE"\n', "service.reload: unknown signal 'NOPE'"),
    (SERVICE + 'reload = "/etc/reload"\n', "service.reload: expected a relative path"),
    ('[[link.accept]]\ninterface = "chat"\nadapter = "b"\non_change = "bounce"\n',
     "link.accept[0].on_change: expected \"none\" or \"reload\" or \"restart\", got 'bounce'"),
    ('[[link.accept]]\ninterface = "chat"\nadapter = "b"\npassword_via = "file"\n',
     "link.accept[0].password_via: expected \"env\" or \"argv\", got 'file'"),
    ('[[link.announce]]\ninterface = "chat"\nadapter = "a"\ngenerate = { port = "5347" }\n',
     "link.announce[0].generate.port: expected a port number or \"{param.NAME}\""),
])
def test_bad_issue13_keys_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(HEAD + text, "m.toml")
    assert caught.value.message.startswith(f"m.toml: {message}"), caught.value.message


def test_exec_programs() -> None:
    """Absolute programs and PATH look-up are a real need (``/bin/sh -c``, a distribution's
    ``/usr/bin/redis-server``); a relative program stays inside the package."""
    base = '[package]\ngroup = "org.example"\nid = "x"\nversion = "1"\n[service]\n'
    for program in ("/bin/sh", "/usr/bin/redis-server", "redis-server", "bin/{platform}/srv"):
        manifest = parse_manifest(base + f'exec = ["{program}", "-c", "x"]\n', SOURCE)
        assert manifest.service is not None and manifest.service.exec is not None
        assert manifest.service.exec[0] == program
    for program in ("../../bin/sh", "bin/../../x", "/usr/../bin/sh", "~root/x", ".", "/"):
        try:
            parse_manifest(base + f'exec = ["{program}"]\n', SOURCE)
        except ManifestError as exc:
            assert exc.message.startswith(f"{SOURCE}: service.exec[0]: expected an absolute "
                                          "program"), exc.message
        else:
            raise AssertionError(f"{program!r} was accepted")
    for key in ("start", "stop"):
        try:
            parse_manifest(base + f'{key} = "/bin/sh"\n' + ('exec = ["x"]\n' if key == "stop"
                                                           else ""), SOURCE)
        except ManifestError as exc:
            assert "expected a relative path inside the package" in exc.message
        else:
            raise AssertionError(f"an absolute {key} was accepted")


def test_link_accept_port_is_a_number_or_a_declared_port_parameter() -> None:
    accept = '[[link.accept]]\ninterface = "chat"\nadapter = "b"\n'
    fixed = parse_manifest(HEAD + accept + "port = 5347\n")
    assert (fixed.accepts[0].port, fixed.accepts[0].port_param) == (5347, None)
    templated = parse_manifest(
        HEAD + SERVICE + '[service.params]\ncport = { type = "port", default = 5347 }\n'
        + accept + 'port = "{param.cport}"\n')
    assert (templated.accepts[0].port, templated.accepts[0].port_param) == (None, "cport")
    assert parse_manifest(HEAD + accept).accepts[0].port is None
    for text, message in (
            (accept + "port = 70000\n", "link.accept[0].port: expected an integer from 1"),
            (accept + 'port = "5347"\n',
             "link.accept[0].port: expected a port number or \"{param.NAME}\""),
            (accept + 'port = "{param.cport}"\n',
             "link.accept[0].port: {param.cport} must name a [service.params] entry"),
            (SERVICE + '[service.params]\ncport = { type = "string" }\n' + accept
             + 'port = "{param.cport}"\n',
             "link.accept[0].port: {param.cport} must name a [service.params] entry of type "
             "\"port\" or \"int\" (it is 'string')")):
        with pytest.raises(ManifestError) as caught:
            parse_manifest(HEAD + text, "m.toml")
        assert caught.value.message.startswith(f"m.toml: {message}"), caught.value.message
