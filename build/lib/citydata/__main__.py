"""Entry point of the `citydata` command (and `python -m citydata`)."""

from __future__ import annotations

import gc


def main() -> None:
    # The modules a command imports live as long as it does: the collector would only walk them
    # over and over while they load (a fifth of the start-up time), so it waits until they have
    # loaded and then leaves them out of every later pass.
    gc.disable()
    from citydata.cli import app

    gc.freeze()
    gc.enable()
    app()


if __name__ == "__main__":
    main()
