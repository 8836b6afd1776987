"""``python -m busim``: the command line, as the ``busim`` script runs it."""

from busim.cli import main

main()
