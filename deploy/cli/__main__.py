"""`python -m deploy.cli`, the same as the `sailo` console script."""

from deploy.cli.main import main

raise SystemExit(main())
