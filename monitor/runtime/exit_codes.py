"""Exit codes of the ``slicewatch`` command line, in one place for the modules that end a run.

0 success; 1 runtime failure (input cannot be read, service unreachable…); 2 invalid spec or
usage; 130 interrupted twice (forced stop).
"""

from slices.errors import SlicewatchError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_FORCED = 130  # a second SIGINT/SIGTERM: stop now


class UsageError(SlicewatchError):
    """Options that cannot go together (or with the spec): the command line exits 2, not 1."""
