"""`python -m bbpes`: the same as the `bbpes` command."""

from .cli import main

raise SystemExit(main())
