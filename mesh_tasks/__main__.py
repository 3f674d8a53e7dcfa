from mesh_tasks.cli import main

raise SystemExit(main())
