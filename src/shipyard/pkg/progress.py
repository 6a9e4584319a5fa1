"""A byte-counting progress bar for downloads and unpacking, drawn on stderr.

Callers create one only when stdout is a terminal (``shipyard.cli.common.show_progress``),
so scripts and tests see clean output. Rich is imported here, not at module level of the
callers, because most commands never draw a bar.
"""

from __future__ import annotations

# A redraw at most every this fraction of the total (and never more often than every
# STEP_MIN bytes): callers report after every member and every chunk, so one large file
# moves the bar as its bytes go by, and thousands of small files cost no redraw each.
STEP_FRACTION = 0.005
STEP_MIN = 64 << 10


class ByteProgress:
    """Progress by bytes: :meth:`update` may be called as often as data moves."""

    def __init__(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        # The label names a coordinate: data, never markup or emoji codes (":six:").
        self._progress = Progress(TextColumn("{task.description}", markup=False,
                                             style="progress.description"),
                                  BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                  console=Console(stderr=True, markup=False, emoji=False,
                                                  highlight=False),
                                  transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)
        self._step = max(STEP_MIN, int(total * STEP_FRACTION))
        self._shown = 0
        self._completed = 0

    def advance(self, amount: int) -> None:
        self.update(self._completed + amount)

    def update(self, completed: int) -> None:
        self._completed = completed
        if completed - self._shown >= self._step or completed < self._shown:
            self._shown = completed
            self._progress.update(self._task, completed=completed)

    @property
    def shown(self) -> int:
        """Bytes the bar shows now (what a terminal sees)."""
        return self._shown

    def close(self) -> None:
        self._progress.update(self._task, completed=self._completed)
        self._progress.stop()
