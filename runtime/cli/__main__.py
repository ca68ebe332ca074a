"""``python -m lotus.runtime.cli``: the same as the ``lotus`` console script."""

from lotus.core.cli import main

main()
