from civicflow.cli import main

raise SystemExit(main())
