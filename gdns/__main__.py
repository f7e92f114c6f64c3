from gdns.cli import main

raise SystemExit(main())
