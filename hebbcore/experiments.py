"""``python -m hebbcore.experiments``: the lab's experiment manager (:mod:`hebbcore.lab.experiments`).

Kept under this name because every committed result records the command that made it. Part of the lab:
the library never imports it.
"""

import sys

from hebbcore.lab.experiments import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
