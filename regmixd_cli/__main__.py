"""`python -m regmixd_cli` runs the command-line tool."""

from regmixd_cli.cli import main

main()
