"""``python -m sourcebook``: the command line (how ``llm serve --detach`` starts its supervisor)."""

from sourcebook.cli import main

main()
