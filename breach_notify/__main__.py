"""``python -m breach_notify`` is the ``breach-notify`` command."""

from breach_notify.cli import main

main()
