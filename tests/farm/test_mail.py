"""A failed build mails its maintainer exactly once (a real SMTP server, aiosmtpd), with the
package, the commit, the error tail and the build's URL; it is not retried by itself."""

from __future__ import annotations

import signal

from farmkit import (  # noqa: F401
    Farm,
    Mailbox,
    Source,
    _farm,
    _make_farm,
    _smtp,
    request_ids,
    wait_until,
)


def test_failed_build_sends_exactly_one_mail(farm: Farm, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    farm.extra_env.update(SHIPYARD_SMTP_HOST="127.0.0.1", SHIPYARD_SMTP_PORT=str(port),
                          SHIPYARD_SMTP_SENDER="farm@example.org",
                          SHIPYARD_FARM_URL="http://farm.example:8470")
    coordinator = farm.start_coordinator()
    url = coordinator.url
    farm.start_worker("w1", url)
    source = Source.create(farm, url)
    source.package("broken", "org.example", "broken", "2.0",
                   "echo compiling; echo 'main.c:3: error: missing semicolon' >&2; "
                   "echo 'note: the build stopped'; echo 'hint: See above for details.'; exit 3",
                   maintainer="Ada Maintainer <ada@example.org>")
    commit, output = source.push("broken build")
    (build_id,) = request_ids(output)
    build = farm.wait_state(url, build_id, "failed", "succeeded")
    assert build["state"] == "failed"
    # The reason is the line that names the cause (not the hint after it), without the
    # coordinate the build's page and mail already show.
    assert build["reason"] == ("build command exited with code 3: "
                               "main.c:3: error: missing semicolon")
    assert "missing semicolon" in farm.log(url, build_id)

    wait_until(lambda: len(box.messages) >= 1, 30, what="the failure mail")
    mail = box.messages[0]
    body = mail.get_payload(decode=True).decode()
    assert mail["X-Envelope-To"] == "ada@example.org"
    assert mail["From"] == "farm@example.org"
    assert "org.example:broken 2.0" in mail["Subject"]
    assert f"http://farm.example:8470/builds/{build_id}" in body
    assert commit in body
    assert "main.c:3: error: missing semicolon" in body

    # Not retried by itself: the same commit is not built again without --force ...
    again = farm.cli("farm", "build", "request", "org.example:broken", "--coordinator", url,
                     "--token", farm.token("admin"))
    assert "no new build" in again.stdout and "failed at this commit" in again.stdout

    # ... and a restarted coordinator does not send the mail again: after the restart a
    # second failure is mailed, the first is not.
    farm.kill(coordinator, signal.SIGKILL)
    coordinator = farm.start_coordinator(port=int(url.rsplit(":", 1)[1]))
    forced = farm.cli("farm", "build", "request", "org.example:broken", "--force",
                      "--coordinator", url, "--token", farm.token("admin"))
    second = int(forced.stdout.split()[1])
    assert farm.wait_state(url, second, "failed", "succeeded")["state"] == "failed"
    wait_until(lambda: len(box.messages) >= 2, 30, what="the second failure mail")
    subjects = [m["Subject"] for m in box.messages]
    assert len(box.messages) == 2, subjects
    assert sum(f"build {build_id} failed" in s for s in subjects) == 1
    assert sum(f"build {second} failed" in s for s in subjects) == 1
    assert len(farm.builds(url, package="org.example:broken")) == 2
