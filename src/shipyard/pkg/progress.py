"""A byte-counting progress bar for downloads and unpacking, drawn on stderr.

Callers create one only when stdout is a terminal (``shipyard.cli.common.show_progress``),
so scripts and tests see clean output. Rich is imported here, not at module level of the
callers, because most commands never draw a bar.
"""

from __future__ import annotations


class ByteProgress:
    def __init__(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                  DownloadColumn(), TransferSpeedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        self._progress.update(self._task, advance=amount)

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)

    def close(self) -> None:
        self._progress.stop()
