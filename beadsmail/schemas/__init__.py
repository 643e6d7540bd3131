"""JSON Schemas of every record kind: the documented on-disk format.

The ``*.schema.json`` files are the source of truth. Validation on the hot paths
(every write, every fold) uses ``_validators.py``, plain Python generated from
those files by ``python -m beadsmail.schemas.generate`` (``make schemas``), because
importing a general validator costs more than a whole ``bd`` command may. A test
checks the generated module matches the schemas, and ``bd doctor`` cross-checks
records with the ``jsonschema`` library itself.
"""

from __future__ import annotations

import json
import os

KINDS = (
    "message", "receipt", "agent", "channel", "membership", "contact",
    "task", "task_event", "comment", "tombstone", "purge", "dead_letter", "reservation",
    "compaction", "key", "dropped",
)


def load(kind: str) -> dict:
    """The JSON Schema of one record kind."""
    # package data next to this file (importlib.resources costs ~9 ms to import)
    with open(os.path.join(os.path.dirname(__file__), f"{kind}.schema.json"), encoding="utf-8") as fh:
        return json.load(fh)
