"""``python -m pipelines`` runs the ``featurize`` command."""

import sys

from pipelines._cli import main

sys.exit(main())
