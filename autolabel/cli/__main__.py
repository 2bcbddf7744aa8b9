"""`python -m autolabel.cli`."""

from autolabel.cli import main

main()
