"""breach-notify: warn those who asked to be warned, without becoming a second copy of a leak."""

__version__ = "0.1.0"
