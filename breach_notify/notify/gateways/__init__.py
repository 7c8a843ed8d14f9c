"""Built-in gateways; importing this package registers their URL schemes."""

from breach_notify.notify.gateways import memory  # noqa: F401
