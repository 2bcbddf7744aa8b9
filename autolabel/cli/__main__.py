"""`python -m autolabel.cli`."""

import signal
import sys


def _before_start(signum: int, frame: object) -> None:
    sys.exit(130)  # Ctrl-C while the command line is still importing: nothing was done


signal.signal(signal.SIGINT, _before_start)
from autolabel.cli import main  # noqa: E402 - after the handler: importing takes a while

signal.signal(signal.SIGINT, signal.default_int_handler)
main()
