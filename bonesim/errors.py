"""Exceptions that carry a message meant for the user.

The CLI prints the message of a :class:`BonesimError` as one sentence and exits
with a non-zero code, never with a traceback.
"""


class BonesimError(Exception):
    """An error caused by user input (bad file, bad parameter), not by a bug."""


class SchemaError(BonesimError):
    """An HDF5 file is not a bonesim file, or was written by a newer schema."""


class InputError(BonesimError, ValueError):
    """A bad value given by the caller (still a ``ValueError`` for library users)."""


class InputTypeError(BonesimError, TypeError):
    """An argument of the wrong kind given by the caller (still a ``TypeError``)."""
