"""``python -m ember.launch``: the same as the ``ember-launch`` command."""

import sys

from .cli import main

sys.exit(main())
