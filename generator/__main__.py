"""`python -m generator`: the kgen command line."""

from generator.cli import main

main()
