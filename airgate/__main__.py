"""``python -m airgate``: the ``airgate`` command, as ``serve --processes`` starts its children."""

from airgate.cli import main

main()
