#!/usr/bin/env python3
"""The svc-script service: answers every GET with a greeting; logs to log/access.log."""

import argparse
import http.server
import logging
import signal
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(prog="server.py")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--coordinate", required=True)
    parser.add_argument("--greeting", default="hello")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(message)s")
    log = logging.getLogger("server")
    body = f"{args.greeting} from {args.coordinate}\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *fmt_args: object) -> None:
            log.info("%s %s", self.address_string(), fmt % fmt_args)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(_signum: int, _frame: object) -> None:
        log.info("SIGTERM: stopping")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("listening on 127.0.0.1:%d as %s", args.port, args.coordinate)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
