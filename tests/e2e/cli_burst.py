"""Run ``airgate ARGS…`` as N processes at once: ``python cli_burst.py N ARGS…``.

Each is a real process of its own (its own event loop, connections, exit status, stderr), forked
from this one after ``airgate.cli`` is imported, so N start-ups do not cost N × 2 s of imports on
a small machine; all of them are released together once forked. Prints one JSON line:
``[[exit status, stderr], …]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def main() -> None:
    count, args = int(sys.argv[1]), sys.argv[2:]
    from airgate.cli import app  # imported once, before the forks

    folder = Path(tempfile.mkdtemp(prefix="ag-burst-"))
    go_read, go_write = os.pipe()
    children: list[int] = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the child: wait for the start, run the command, exit with its status
            os.close(go_write)
            os.read(go_read, 1)  # returns when the parent closes its end: all start together
            err = os.open(folder / f"{index}.err", os.O_WRONLY | os.O_CREAT, 0o600)
            out = os.open(os.devnull, os.O_WRONLY)
            os.dup2(err, 2)
            os.dup2(out, 1)
            try:
                app(args, prog_name="airgate")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            else:
                code = 0
            sys.stderr.flush()
            os._exit(code)
        children.append(pid)
    os.close(go_read)
    os.close(go_write)  # the start
    results = []
    for index, pid in enumerate(children):
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        results.append([code, (folder / f"{index}.err").read_text()])
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
