from .app._cli import main

raise SystemExit(main())
