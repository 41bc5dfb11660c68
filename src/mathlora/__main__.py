from mathlora.app.cli import main

raise SystemExit(main())
