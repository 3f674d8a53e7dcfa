"""`python -m mesh_tasks.lab ...`: the lab CLI on its own (same commands as `mesh_tasks lab ...`)."""

import sys

from mesh_tasks.lab.cli import main

sys.exit(main(["lab", *sys.argv[1:]]))
