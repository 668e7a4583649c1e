"""Command-line tools of depthssd_train; each module has a ``main(argv) -> int``.

Shared convention: a usage error exits 2 (argparse), any other error prints one readable line
``<prog>: error: <what>`` to stderr and exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def run_cli(prog: str, body: Callable[[Sequence[str] | None], int],
            argv: Sequence[str] | None) -> int:
    """Run ``body(argv)``, turning expected errors into one stderr line and an exit code."""
    try:
        return body(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
