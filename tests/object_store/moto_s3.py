"""An S3-compatible server for the object-store tests: moto's S3 backend, on 127.0.0.1 at the
port given as the only argument, or one the OS picks. Prints `PORT <n>` once listening, then one line per request
(`GET /bucket/key 200`): the request log the tests read to see what was downloaded."""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


class RequestLog(WSGIRequestHandler):
    """Logs `METHOD PATH STATUS` to stdout, nothing else."""

    def log_request(self, code="-", size="-"):
        print(f"{self.command} {self.path} {code}", flush=True)

    def log_message(self, format, *args):
        pass


def main():
    app = DomainDispatcherApplication(create_backend_app)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=RequestLog)
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
