"""The project's own error: bad input a user can fix (a config value, a flag, a folder, Hub credentials).

``scl-hf`` prints such an error as one line naming what to change; any other exception is a bug or an
environment failure and keeps its traceback.
"""


class SclHfError(ValueError):
    """Input the user can fix; the message names the key, flag or file and what is allowed."""


class RunDirError(SclHfError):
    """A folder that is not a run directory, or a generation of it that is not complete."""
