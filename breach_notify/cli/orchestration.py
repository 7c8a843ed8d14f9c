"""The CLI's way to the Prefect flows in the repository's root ``flows/`` package.

``flows/`` sits next to this package in a clone (and in the container image), where Prefect
deployments reference it as ``flows/<name>.py:<flow>``. It is not installed into
site-packages under a generic name; the commands that orchestrate (``run``, ``serve``,
``demo``, ``ui``) put the source root on ``sys.path`` instead. ``BREACH_NOTIFY_SRC`` names
another source root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from breach_notify.errors import OperationalError

_MARKER = "breach-notify flows"


def source_root() -> Path:
    """The directory that holds ``flows/``: ``BREACH_NOTIFY_SRC`` or this package's parent."""
    configured = os.environ.get("BREACH_NOTIFY_SRC")
    return Path(configured) if configured else Path(__file__).resolve().parents[2]


def load() -> None:
    """Make ``import flows`` reach this project's flows, or fail with the fix named."""
    root = source_root()
    if not (root / "flows" / "__init__.py").is_file():
        raise OperationalError(
            f"the Prefect flows are not at {root / 'flows'}; run from a clone of breach-notify "
            "or set BREACH_NOTIFY_SRC to the directory that holds flows/"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import flows

    if getattr(flows, "PROJECT", None) != _MARKER:
        raise OperationalError(
            f"'import flows' found another package ({flows.__file__}); "
            "set BREACH_NOTIFY_SRC to the breach-notify source directory"
        )
