#!/usr/bin/env python3
"""The svc-exec service: prints a tick to stdout every --interval seconds and keeps a
count in data/ticks, a line per tick in log/ticker.log. SIGTERM ends it cleanly."""

import argparse
import signal
import sys
import time
from pathlib import Path


class Stop(Exception):
    """Raised by the SIGTERM handler: leaves the sleep at once, not when it ends."""


def main() -> int:
    parser = argparse.ArgumentParser(prog="ticker.py")
    parser.add_argument("--runtime-dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--interval", required=True, type=float)
    args = parser.parse_args()
    if args.interval <= 0:
        print(f"ticker: --interval must be positive, got {args.interval}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, stop)
    print(f"ticker {args.name} starting, interval {args.interval}s", file=sys.stderr,
          flush=True)
    count = 0
    counter = args.runtime_dir / "data" / "ticks"
    with open(args.runtime_dir / "log" / "ticker.log", "a", encoding="utf-8") as log:
        try:
            while True:
                count += 1
                print(f"tick {count} from {args.name}", flush=True)
                log.write(f"{time.time():.3f} tick {count}\n")
                log.flush()
                counter.write_text(f"{count}\n", encoding="ascii")
                time.sleep(args.interval)
        except Stop:
            pass
    print(f"ticker {args.name} stopping after {count} ticks", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
