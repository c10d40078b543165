from .app._entry import main

raise SystemExit(main())
