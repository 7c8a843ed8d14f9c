"""Error classes shared by every layer.

Messages name the problem and the fix; they never contain a phone number or key material.
The CLI maps ``BadInput`` to exit status 2 and every other ``BreachNotifyError`` to 1.
"""


class BreachNotifyError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class BadInput(BreachNotifyError):
    """The caller gave something unusable (a path, an option, a file's content)."""

    exit_code = 2


class OperationalError(BreachNotifyError):
    """Something outside the caller's control failed (gateway, lock, disk)."""

    exit_code = 1
