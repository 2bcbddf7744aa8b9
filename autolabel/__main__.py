"""`python -m autolabel` is the `autolabel` command."""

from .cli import main

main()
