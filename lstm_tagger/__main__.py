"""``python -m lstm_tagger`` is ``lstm-tag`` (and ``main`` its console script)."""

import os
import signal
import sys


def _quiet_exit(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # Ctrl-C while torch is being imported: nothing to keep, no traceback


def _with_allocator() -> None:
    """``lstm-tag train`` runs again, at once, with tcmalloc preloaded where it is installed
    (``memory.preload_environment``): the same command line, the same process id."""
    from lstm_tagger.memory import find_tcmalloc, preload_environment

    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    environment = preload_environment(command, dict(os.environ), find_tcmalloc())
    if environment is not None:
        try:
            os.execve(sys.executable, list(sys.orig_argv), environment)
        except OSError:  # not allowed here: go on with the C library's malloc
            pass


def main() -> None:
    """Import the command line with Ctrl-C meaning a quiet exit 130, then run it."""
    _with_allocator()
    signal.signal(signal.SIGINT, _quiet_exit)
    from lstm_tagger.cli import run

    signal.signal(signal.SIGINT, signal.default_int_handler)
    run()


if __name__ == "__main__":
    main()
