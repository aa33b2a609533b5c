"""Imports every module that defines tables, so Alembic and create_all see the whole schema.

A feature that adds tables in its own module adds one import line here.
"""

import core.models  # noqa: F401
import core.console.models  # noqa: F401  (console users, labels, canned responses)
import core.civic_models  # noqa: F401  (e-Musrenbang proposals, Open311 API keys)
