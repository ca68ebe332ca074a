"""``python -m runtime.cli``: the same as the ``lotus`` console script."""

from runtime.cli import main

main()
