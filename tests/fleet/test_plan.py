"""Converge planning is a pure function: desired + actual -> actions, tested in-process."""

from __future__ import annotations

from shipyard.formats.fleet import DesiredInstance
from shipyard.node.plan import Actual, for_node, plan, unknown_placeholder

PKG = "org.example:svc-script:1.0.0"
NEW = "org.example:svc-script:1.1.0"


def want(service: str, package: str = PKG, params: list[str] | None = None,
         boot: bool = True) -> DesiredInstance:
    return DesiredInstance(service=service, package=package, params=params or [], boot=boot)


def kinds(actions) -> list[str]:
    return [f"{a.kind} {a.service}" for a in actions]


def test_new_instance_is_installed_registered_started() -> None:
    actions = plan([want("1.a.b.c", params=["--port=1"])], {}, [], [])
    assert kinds(actions) == ["install 1.a.b.c", "register 1.a.b.c", "start 1.a.b.c"]
    assert actions[1].params == ("--port=1",) and actions[1].package == PKG


def test_installed_package_is_not_installed_again() -> None:
    assert kinds(plan([want("1.a.b.c")], {}, [PKG], [])) == ["register 1.a.b.c",
                                                             "start 1.a.b.c"]


def test_converged_node_does_nothing() -> None:
    actual = {"1.a.b.c": Actual("1.a.b.c", PKG, (), True, running=True)}
    assert plan([want("1.a.b.c")], actual, [PKG], ["1.a.b.c"]) == []


def test_stopped_instance_is_started() -> None:
    actual = {"1.a.b.c": Actual("1.a.b.c", PKG, (), True, running=False)}
    assert kinds(plan([want("1.a.b.c")], actual, [PKG], ["1.a.b.c"])) == ["start 1.a.b.c"]


def test_other_version_is_upgraded_in_place() -> None:
    actual = {"1.a.b.c": Actual("1.a.b.c", PKG, (), True, running=True)}
    actions = plan([want("1.a.b.c", NEW)], actual, [PKG], ["1.a.b.c"])
    assert kinds(actions) == ["upgrade 1.a.b.c"] and actions[0].package == NEW


def test_other_params_reregister_and_restart() -> None:
    actual = {"1.a.b.c": Actual("1.a.b.c", PKG, ("--port=1",), True, running=True)}
    actions = plan([want("1.a.b.c", params=["--port=2"])], actual, [PKG], ["1.a.b.c"])
    assert kinds(actions) == ["stop 1.a.b.c", "register 1.a.b.c", "start 1.a.b.c"]
    assert actions[1].params == ("--port=2",)
    boot_only = plan([want("1.a.b.c", params=["--port=1"], boot=False)], actual, [PKG],
                     ["1.a.b.c"])
    assert kinds(boot_only) == ["stop 1.a.b.c", "register 1.a.b.c", "start 1.a.b.c"]


def test_no_longer_desired_managed_instance_is_removed_first() -> None:
    actual = {"1.old.b.c": Actual("1.old.b.c", PKG, (), True, running=True),
              "1.hand.b.c": Actual("1.hand.b.c", PKG, (), True, running=True)}
    actions = plan([want("1.new.b.c")], actual, [PKG], ["1.old.b.c"])
    assert kinds(actions) == ["stop 1.old.b.c", "unregister 1.old.b.c",
                              "register 1.new.b.c", "start 1.new.b.c"]


def test_stopped_leftover_is_only_unregistered_and_gone_ones_are_ignored() -> None:
    actual = {"1.old.b.c": Actual("1.old.b.c", PKG, (), True, running=False)}
    assert kinds(plan([], actual, [PKG], ["1.old.b.c", "1.gone.b.c"])) == [
        "unregister 1.old.b.c"]


def test_hand_registered_instance_is_never_taken_over() -> None:
    actual = {"1.a.b.c": Actual("1.a.b.c", PKG, (), True, running=False)}
    actions = plan([want("1.a.b.c", NEW)], actual, [PKG], [])
    assert kinds(actions) == ["refuse 1.a.b.c"]
    assert "outside the fleet" in actions[0].reason
    assert plan([], actual, [PKG], []) == []  # and never removed


def test_node_placeholders_are_this_nodes_own_and_then_compare_equal() -> None:
    """``{node.address}``/``{node.name}`` become the agent's own values before planning, so
    the registered parameters are concrete and the next plan finds nothing to change."""
    raw = want("1.a.b.c", params=["--bind={node.address}", "--id={node.name}-x", "--p=1"])
    (mine,) = for_node([raw], "gw1", "10.0.0.11")
    assert mine.params == ["--bind=10.0.0.11", "--id=gw1-x", "--p=1"]
    assert raw.params[0] == "--bind={node.address}"  # the document itself is left as sent
    actions = plan([mine], {}, [PKG], [])
    assert actions[0].params == ("--bind=10.0.0.11", "--id=gw1-x", "--p=1")
    registered = Actual("1.a.b.c", PKG, actions[0].params, running=True)
    again = for_node([raw], "gw1", "10.0.0.11")
    assert plan(again, {"1.a.b.c": registered}, [PKG], ["1.a.b.c"]) == []


def test_only_node_placeholders_are_allowed_in_parameters() -> None:
    assert unknown_placeholder(["--bind={node.address}", "--n={node.name}", "--x=1"]) is None
    assert unknown_placeholder(["--bind={node.adress}"]) == "{node.adress}"
    assert unknown_placeholder(["--a=1", "--b={param.port}"]) == "{param.port}"
