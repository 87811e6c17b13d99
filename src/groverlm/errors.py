"""Project exception: a user error that the CLI prints as one line and exits 2 for."""


class GroverError(Exception):
    """Bad input or a refused action; the message names the file (and line) at fault."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
