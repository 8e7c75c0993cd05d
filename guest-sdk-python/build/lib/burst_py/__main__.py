"""``python -m burst_py``: the same as the ``burst-py`` command."""

from burst_py import main

raise SystemExit(main())
