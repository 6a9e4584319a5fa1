# ruff: noqa: RUF001  (pip prints a multiplication sign; the test keeps its output as is)
"""The failure reason is the output line that names the cause: the last line that looks like
an error, not the hint or note printed after it; else the last line."""

from __future__ import annotations

from shipyard.pkg.pack import reason_line

PIP = """\
Processing ./six-1.16.0
  Preparing metadata (setup.py) ... error
  error: subprocess-exited-with-error

  × python setup.py egg_info did not run successfully.
  │ exit code: 1
  ╰─> [6 lines of output]
      Traceback (most recent call last):
        File "<string>", line 2, in <module>
      ModuleNotFoundError: No module named 'setuptools'
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

× Encountered error while generating package metadata.
╰─> See above for output.

note: This is an issue with the package mentioned above, not pip.
hint: See above for details.
"""


def test_the_last_error_line_wins_over_hints_and_notes() -> None:
    assert reason_line(PIP.splitlines()) == (
        "× Encountered error while generating package metadata.")
    assert reason_line(["compiling", "main.c:3: error: missing semicolon",
                        "make: *** [all] Error 1", "hint: See above for details."]) == (
        "make: *** [all] Error 1")


def test_without_an_error_line_the_last_line_is_the_reason() -> None:
    assert reason_line(["step 1", "step 2 done", "  ", ""]) == "step 2 done"
    assert reason_line([]) == ""
