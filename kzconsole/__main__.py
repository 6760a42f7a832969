from kzconsole.cli import main

raise SystemExit(main())
