"""Exceptions that carry a message meant for the user.

The CLI prints the message of a :class:`BonesimError` as one sentence and exits
with a non-zero code, never with a traceback. A message that names an argument
can carry two spellings: ``str(exc)`` names the Python argument
(``overwrite=True``) and :attr:`BonesimError.cli_message` the command-line
option (``--overwrite``), which is what the CLI prints.
"""

from __future__ import annotations


class BonesimError(Exception):
    """An error caused by user input (bad file, bad parameter), not by a bug.

    ``cli=`` is the same message in command-line spelling (options instead of
    keyword arguments); without it the CLI prints ``str(exc)``.

    >>> e = BonesimError("pass overwrite=True to replace it", cli="pass --overwrite to replace it")
    >>> str(e), e.cli_message
    ('pass overwrite=True to replace it', 'pass --overwrite to replace it')
    """

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        self.cli = cli

    @classmethod
    def fix(cls, message: str, api: str, cli: str) -> BonesimError:
        """``message; api`` for Python callers and ``message; cli`` on the command line.

        >>> e = BonesimError.fix("run.h5 exists", "pass overwrite=True", "pass --overwrite")
        >>> str(e), e.cli_message
        ('run.h5 exists; pass overwrite=True', 'run.h5 exists; pass --overwrite')
        """
        return cls(f"{message}; {api}", cli=f"{message}; {cli}")

    @property
    def cli_message(self) -> str:
        """The message as a command-line user should read it."""
        return self.cli if self.cli else str(self)


class SchemaError(BonesimError):
    """An HDF5 file is not a bonesim file, or was written by a newer schema."""


class InputError(BonesimError, ValueError):
    """A bad value given by the caller (still a ``ValueError`` for library users)."""


class InputTypeError(BonesimError, TypeError):
    """An argument of the wrong kind given by the caller (still a ``TypeError``)."""
