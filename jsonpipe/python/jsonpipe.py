"""Child side of jsonpipe for Python: one JSON request on stdin, one JSON result on stdout.

    from jsonpipe import serve

    def handle(req):
        return {"n": len(req["text"])}

    serve(handle)

On failure the last line of stderr is {"error": "message", "type": "ExceptionType"} and
the exit status is 1; input that is not JSON is reported with type "BadInput". Anything
printed to stdout besides the result breaks the protocol: log to stderr instead.
Standard library only; Python 3.8+.
"""

import json
import sys

__all__ = ["serve"]


def _fail(message, type_name):
    # ASCII escapes: the encoding of stderr depends on the locale.
    line = json.dumps({"error": message, "type": type_name})
    try:
        sys.stdout.flush()
    except Exception:
        pass
    # The report must be the last line of stderr, on a line of its own.
    sys.stderr.write("\n" + line + "\n")
    sys.stderr.flush()
    sys.exit(1)


def serve(fn):
    """Read one JSON value from stdin, call fn with it, write its result as JSON to
    stdout and exit 0. Does not return. KeyboardInterrupt and SystemExit propagate."""
    try:
        req = json.loads(sys.stdin.buffer.read())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        _fail("decode input: %s" % e, "BadInput")
    try:
        out = json.dumps(fn(req), ensure_ascii=False)
    except Exception as e:
        _fail(str(e) or repr(e), type(e).__name__)
    sys.stdout.flush()  # what fn printed stays before the result
    # Bytes, not sys.stdout's text layer: its encoding depends on the locale, and a
    # clean environment may leave it ASCII.
    sys.stdout.buffer.write(out.encode("utf-8") + b"\n")
    sys.stdout.buffer.flush()
    sys.exit(0)
