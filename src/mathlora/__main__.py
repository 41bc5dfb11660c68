from mathlora.cli import main

raise SystemExit(main())
