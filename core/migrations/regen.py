"""Regenerate the initial migration from the models (development only, before the first release).

    python -m core.migrations.regen

While the project has no deployment to upgrade, the schema is one initial revision that
this script rewrites; after the first release, add revisions with `alembic revision --autogenerate`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from core.db import MIGRATIONS, alembic_config


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config(f"sqlite:///{Path(tmp) / 'empty.db'}")
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    print("wrote", next(versions.glob("0001_*.py")))


if __name__ == "__main__":
    main()
