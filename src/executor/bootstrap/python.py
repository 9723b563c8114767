# mcpworks sandbox bootstrap (python). Waits for exactly one call on stdin, runs `main(args)` from
# the tool code and writes one JSON frame to fd 3. Runs as the jail's init; nothing else ever runs.
#
# JSON goes through the json package's C accelerator directly: `import json` pulls in `re`, enum
# and functools, ~8 ms of every cold start, before any tool code runs. Tool code that imports
# json itself pays that then, as any python program would.
import os as _os
import sys as _sys
from time import monotonic_ns as _monotonic_ns  # built in: frame stamps for the executor's breakdown

try:
    from _json import make_encoder as _make_encoder, make_scanner as _make_scanner
except ImportError:  # an interpreter built without the accelerator
    _make_encoder = _make_scanner = None

# The executor image's python packages (src/executor/packages.ts): after the standard library, so
# a package never shadows a standard module. Absent when the image carries none.
_PACKAGES = "/opt/mcpworks/packages/python"
_sys.path.append(_PACKAGES)

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecodeContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _loads(raw):
    if _make_scanner is None:
        import json

        return json.loads(raw)
    text = raw.decode("utf-8")
    start, end = 0, len(text)
    while start < end and text[start] in " \t\n\r":
        start += 1
    while end > start and text[end - 1] in " \t\n\r":
        end -= 1
    try:
        value, stop = _make_scanner(_DecodeContext())(text, start)
    except StopIteration:
        raise ValueError("the request is not JSON") from None
    if stop != end:
        raise ValueError("the request has extra data after its JSON value")
    return value


def _not_serializable(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _dumps(value, default=_not_serializable, allow_nan=True):
    """json.dumps(value, ensure_ascii=False, allow_nan=allow_nan, default=default)."""
    if _make_encoder is None:
        import json

        return json.dumps(value, ensure_ascii=False, allow_nan=allow_nan, default=default)
    from _json import encode_basestring

    encode = _make_encoder({}, default, encode_basestring, None, ": ", ", ", False, False, allow_nan)
    return "".join(encode(value, 0))


def _frame_error(exc):
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tool>":
            line = tb.tb_lineno
        tb = tb.tb_next
    message = str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        # Not in the standard library, nor among the image's packages: say so, not just "No module".
        message = (
            f"No module named '{exc.name}': the executor image does not carry the package providing "
            f"'{exc.name.partition('.')[0]}' (python packages are looked up in {_PACKAGES}; "
            "build an executor image with it and set spec.executor.image)"
        )
    if isinstance(exc, SyntaxError) and exc.filename == "<tool>":
        line = exc.lineno
        message = exc.msg
    return {"ok": False, "error": {"type": type(exc).__name__, "message": message[:4096], "line": line}}


def _prewarm():
    """Takes one call's path once on a dummy before the sandbox reports ready, so the first touch
    of the parser, compiler and JSON code (page faults, lazy initialisation) is not paid by the
    call. Nothing it creates survives: the namespace is dropped and the tool gets a fresh one."""
    scratch = {}
    request = _loads(b'{"code": "def main(args):\\n    return [args, 1.5, \\"x\\"]", "args": {"a": [1]}, "env": {}}')
    exec(compile(request["code"], "<prewarm>", "exec"), scratch)
    _dumps({"ok": True, "value": scratch["main"](request["args"])}, allow_nan=False)


# Sockets the tool opened without the proxy (egress sandboxes only), reported with the frame.
# The sandbox refuses them whatever this list says; it only tells the record what was tried, and
# code that goes around the socket module (ctypes, a subprocess) is not listed.
_DIRECT = []
_MAX_DIRECT = 16


def _watch_direct(socket, relay_port):
    """Notes TCP connects to anything but the relay, name look-ups, and sockets of other kinds
    (UDP, raw: refused at creation), before the call to the real method."""
    kinds = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp", socket.SOCK_RAW: "raw"}
    relay = ("127.0.0.1", "localhost")

    def note(kind, host, port):
        if len(_DIRECT) < _MAX_DIRECT:
            _DIRECT.append({"kind": kind, "host": str(host)[:253], "port": port if isinstance(port, int) and 0 <= port <= 65535 else 0})

    def destination(address):
        if isinstance(address, tuple) and len(address) >= 2:
            return address[0], address[1]
        return "", 0

    base = socket.socket
    init, connect, connect_ex, sendto = base.__init__, base.connect, base.connect_ex, base.sendto

    def checked_init(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except PermissionError:
            kind = args[1] if len(args) > 1 else kwargs.get("type", -1)
            proto = args[2] if len(args) > 2 else kwargs.get("proto", 0)
            if kind == socket.SOCK_STREAM and proto not in (0, socket.IPPROTO_TCP):
                kind = None  # SCTP and the like: a stream socket, not TCP
            note(kinds.get(kind, "other"), "", 0)
            raise

    def outside(self, address):
        if self.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        host, port = destination(address)
        return not (host in relay and port == relay_port)

    def checked(method):
        def call(self, address):
            if outside(self, address):
                note(kinds.get(self.type, "other"), *destination(address))
            return method(self, address)

        return call

    def checked_sendto(self, data, *rest):
        if rest and outside(self, rest[-1]):
            note(kinds.get(self.type, "other"), *destination(rest[-1]))
        return sendto(self, data, *rest)

    lookup = socket.getaddrinfo

    def checked_getaddrinfo(host, port, *args, **kwargs):
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if name not in (None, "", *relay):
            note("name", name, port if isinstance(port, int) else 0)
        return lookup(host, port, *args, **kwargs)

    base.__init__, base.connect, base.connect_ex, base.sendto = checked_init, checked(connect), checked(connect_ex), checked_sendto
    socket.getaddrinfo = checked_getaddrinfo


def _start_relay():
    """Egress sandboxes only (the executor sets MCPWORKS_EGRESS_SOCKET at spawn): a listener on
    the proxy address (HTTPS_PROXY, loopback) that forwards each connection to the executor's
    egress proxy socket. The jail has no other way out; the proxy decides what passes."""
    path = _os.environ.get("MCPWORKS_EGRESS_SOCKET")
    if not path:
        return
    import socket
    import threading

    port = int(_os.environ["HTTPS_PROXY"].rsplit(":", 1)[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def forward(client):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            return
        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def accept():
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=forward, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    _watch_direct(socket, port)


def _serve():
    result = _os.fdopen(3, "w", encoding="utf-8")
    _start_relay()
    if _sys.argv[1:] == ["prewarm"]:  # a warm sandbox; a cold one's call is already waiting
        _prewarm()
    _os.write(2, b"\x06")  # ready: the interpreter is up and waits for its one call
    raw = _sys.stdin.buffer.readline()  # the call is one line (the executor ends it with a newline)
    read_us = _monotonic_ns() // 1000
    try:
        request = _loads(raw)
        for name, value in request.get("env", {}).items():
            _os.environ[name] = value
        # A real module, so functions defined by the tool can be pickled (multiprocessing).
        module = type(_sys)("__tool__")
        _sys.modules["__tool__"] = module
        exec(compile(request["code"], "<tool>", "exec"), module.__dict__)
        main = module.__dict__.get("main")
        if not callable(main):
            raise NameError("the tool code defines no function main(args)")
        value = main(request.get("args", {}))
        try:
            text = _dumps({"ok": True, "value": value}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError("main(args) returned a value that is not JSON-serializable: " + str(exc)) from None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are tool errors too
        text = _dumps(_frame_error(exc), default=str)
    try:
        _sys.stdout.flush()
        _sys.stderr.flush()
    except BaseException:
        pass
    # Both stamps (monotonic µs, the host's clock too) let the executor tell hand-off from work.
    if _DIRECT:
        text = text[:-1] + ', "direct": ' + _dumps(_DIRECT) + "}"
    text = text[:-1] + ', "t": [%d, %d]}' % (read_us, _monotonic_ns() // 1000)
    result.write(text + "\n")  # the newline ends the frame: the executor answers at once
    result.close()
    _os._exit(0)


_serve()
