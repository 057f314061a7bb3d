"""The two ways the toolchain says no. Both end as one line on stderr, never a traceback."""


class Refused(Exception):
    """A file the toolchain will not work on, with the reason (exit status 1)."""


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""
