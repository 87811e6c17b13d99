"""Project exception: a user error that the CLI prints as one line and exits 2 for; and `counted`,
the count and noun of those lines and of the commands' summary lines."""


class GroverError(Exception):
    """Bad input or a refused action; the message names the file (and line) at fault."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.message = message  # without the file and line, for a caller that names them anew
        self.path = path
        self.line = line


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural (`plural`, default noun + "s") unless n is 1: "1 task", never
    "1 tasks" nor "1 task(s)".

    >>> counted(1, "task"), counted(0, "k value"), counted(12000, "entry", "entries")
    ('1 task', '0 k values', '12,000 entries')
    """
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def one_line(err: Exception) -> str:
    """What the CLI prints for a GroverError or an OSError (a path the system refused: an output
    under a file, no permission, a full disk): one line, whatever a library put in it."""
    if isinstance(err, OSError):
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return f"{where}{err.strerror or err}"
    return " ".join(str(err).split())
