"""``python -m kafka_compat``: the same as the ``kafka-compat`` command."""
from kafka_compat.cli import main

raise SystemExit(main())
