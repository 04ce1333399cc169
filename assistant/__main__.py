"""`python -m assistant` runs the command-line interface."""

from assistant.app.cli import main

raise SystemExit(main())
