"""``python -m rtseg.cli``: the same as the ``rtseg`` console script."""

from rtseg.cli import main

main()
