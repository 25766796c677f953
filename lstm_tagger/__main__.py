"""``python -m lstm_tagger`` is ``lstm-tag`` (and ``main`` its console script)."""

import os
import signal


def _quiet_exit(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # Ctrl-C while torch is being imported: nothing to keep, no traceback


def main() -> None:
    """Import the command line with Ctrl-C meaning a quiet exit 130, then run it."""
    signal.signal(signal.SIGINT, _quiet_exit)
    from lstm_tagger.cli import run

    signal.signal(signal.SIGINT, signal.default_int_handler)
    run()


if __name__ == "__main__":
    main()
