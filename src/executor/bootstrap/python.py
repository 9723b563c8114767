# mcpworks sandbox bootstrap (python). Waits for exactly one call on stdin, runs `main(args)` from
# the tool code and writes one JSON frame to fd 3. Runs as the jail's init; nothing else ever runs.
import json as _json
import os as _os
import sys as _sys
import types as _types


def _frame_error(exc):
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tool>":
            line = tb.tb_lineno
        tb = tb.tb_next
    message = str(exc)
    if isinstance(exc, SyntaxError) and exc.filename == "<tool>":
        line = exc.lineno
        message = exc.msg
    return {"ok": False, "error": {"type": type(exc).__name__, "message": message[:4096], "line": line}}


def _serve():
    result = _os.fdopen(3, "w", encoding="utf-8")
    _os.write(2, b"\x06")  # ready: the interpreter is up and waits for its one call
    raw = _sys.stdin.buffer.read()
    try:
        request = _json.loads(raw)
        for name, value in request.get("env", {}).items():
            _os.environ[name] = value
        # A real module, so functions defined by the tool can be pickled (multiprocessing).
        module = _types.ModuleType("__tool__")
        _sys.modules["__tool__"] = module
        exec(compile(request["code"], "<tool>", "exec"), module.__dict__)
        main = module.__dict__.get("main")
        if not callable(main):
            raise NameError("the tool code defines no function main(args)")
        value = main(request.get("args", {}))
        try:
            text = _json.dumps({"ok": True, "value": value}, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError("main(args) returned a value that is not JSON-serializable: " + str(exc)) from None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are tool errors too
        text = _json.dumps(_frame_error(exc), ensure_ascii=False, default=str)
    try:
        _sys.stdout.flush()
        _sys.stderr.flush()
    except BaseException:
        pass
    result.write(text + "\n")  # the newline ends the frame: the executor answers at once
    result.close()
    _os._exit(0)


_serve()
