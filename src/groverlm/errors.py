"""Project exception: a user error that the CLI prints as one line and exits 2 for."""


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


def one_line(err: Exception) -> str:
    """What the CLI prints for a GroverError or an OSError (a path the system refused: an output
    under a file, no permission, a full disk): one line, whatever a library put in it."""
    if isinstance(err, OSError):
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return f"{where}{err.strerror or err}"
    return " ".join(str(err).split())
