"""Python side of a runbox pool worker (protocol version 1, see docs/protocol.md).

    from runbox_worker import serve

    def handle(params):
        return {"n": params["n"] * 2}

    serve(handle)

serve(fn) announces the worker, then answers one request per stdin line until stdin
closes, and exits 0. fn gets the request's params (decoded JSON) and returns anything
json.dumps accepts. An exception raised by fn fails that task only: the pool sees a
RemoteError with the exception's str() as message and its class name as type
("ValueError"); the worker goes on. A result that is not JSON (an object json.dumps
refuses, NaN, infinity) is an error of type "BadOutput".

stdout is reserved for frames. Before the first frame, serve keeps a private
duplicate of the real stdout and points file descriptor 1 and sys.stdout at stderr, so
whatever the task prints (print(), sys.stdout.write, os.write(1, ...), C extensions,
child processes) goes to stderr, which the pool forwards to its logger, instead of
corrupting the frame stream. Likewise stdin is kept privately and descriptor 0 and
sys.stdin point at /dev/null: a task reading stdin sees end of file instead of eating
requests.

A task that hangs is killed by the pool (task timeout); a task that calls os._exit or
sys.exit ends the worker, and the pool reports ErrWorkerDied and starts a fresh one.
Standard library only; Python 3.8+.
"""

import json
import os
import sys

__all__ = ["serve"]

PROTOCOL_VERSION = 1


def _encode(obj):
    # ASCII escapes keep the frame valid UTF-8 whatever the strings hold (even lone
    # surrogates), and need no locale.
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def _take_streams():
    """Return private binary handles on the real stdin and stdout, and point fds 0/1
    and sys.stdin/sys.stdout at /dev/null and stderr for the task's code."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    frames = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    requests = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, "r")
    return requests, frames


def _answer(fn, line, init=None):
    """Turn one request line into one response frame (bytes)."""
    try:
        req = json.loads(line)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        return _encode({"id": 0, "error": {"message": "bad request: %s" % e, "type": "BadRequest"}})
    if not isinstance(req, dict):
        return _encode({"id": 0, "error": {"message": "bad request: not a JSON object", "type": "BadRequest"}})
    rid = req.get("id", 0)
    if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
        rid = 0
    method = req.get("method")
    if method == "ping":
        return _encode({"id": rid, "result": "pong"})
    if method == "init":
        if init is None:
            return _encode({"id": rid, "error": {"message": "worker has no initializer", "type": "BadRequest"}})
        try:
            init(req.get("params"))
        except Exception as e:
            return _encode({"id": rid, "error": {"message": str(e), "type": type(e).__name__}})
        return _encode({"id": rid, "result": None})
    if method != "call":
        return _encode({"id": rid, "error": {"message": "unknown method %s" % (method,), "type": "BadRequest"}})
    try:
        result = fn(req.get("params"))
    except Exception as e:
        return _encode({"id": rid, "error": {"message": str(e), "type": type(e).__name__}})
    try:
        return _encode({"id": rid, "result": result})
    except Exception as e:  # TypeError (not serializable), ValueError (NaN), RecursionError
        return _encode({"id": rid, "error": {"message": "encode result: %s" % e, "type": "BadOutput"}})


def serve(fn, init=None):
    """Serve requests with fn until stdin closes, then exit 0. Does not return.
    init, when given, runs once on the pool's Config.Init before the first task.
    SystemExit and KeyboardInterrupt raised by fn propagate and end the worker."""
    requests, frames = _take_streams()
    try:
        frames.write(_encode({"runbox_worker": PROTOCOL_VERSION, "pid": os.getpid()}))
        frames.flush()
        readline = requests.readline
        while True:
            line = readline()
            if not line:
                break  # stdin closed: the pool is done with us
            out = _answer(fn, line, init)
            try:
                sys.stderr.flush()  # the task's logs before its answer
            except Exception:
                pass
            frames.write(out)
            frames.flush()
    except BrokenPipeError:
        os._exit(1)  # the pool is gone; nothing left to flush
    sys.exit(0)
