"""`python -m assistant` runs the command-line interface."""

from assistant.app.launch import main

raise SystemExit(main())
