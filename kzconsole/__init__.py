"""kzconsole: Kazoo Tasks re-created in Python, with a keyboard-driven terminal console."""

__version__ = "0.1.0"
