"""Command line: `groverlm SUBCOMMAND ...`. Each stage module registers its own subcommands.

`main(argv=None)` returns an exit code, so tests call it in-process. A user error (GroverError) is
printed as one line and exits 2; nothing else is caught, so a bug still shows its traceback.
`guarded` does the same for the scripts in bench/.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable

from groverlm import __version__
from groverlm.errors import GroverError, one_line

# Each top-level command and the module whose `register(subparsers)` adds it, in the order `groverlm
# --help` lists them. `groverlm CMD ...` imports only CMD's module; help, --version and an unknown
# command import them all. They stay light to import: heavy libraries (torch, transformers,
# scikit-learn, matplotlib) are bound at their top through groverlm.lazy and load on first use.
COMMANDS = {
    "run": "groverlm.runner",
    "demo": "groverlm.runner",
    "data": "groverlm.data",
    "genome": "groverlm.genome",
    "bpe": "groverlm.bpe",
    "corpus": "groverlm.corpus",
    "pretrain": "groverlm.pretrain",
    "plot-log": "groverlm.pretrain",
    "embed": "groverlm.embed",
    "score": "groverlm.score",
    "ism": "groverlm.score",
    "analyze": "groverlm.analysis.analyze",
    "report": "groverlm.analysis.report",
    "tasks": "groverlm.tasks",
    "baselines": "groverlm.baselines",
    "baseline": "groverlm.baselines",  # the old name of `baselines`, an alias
    "compare": "groverlm.metrics",
    "kmer-vocab": "groverlm.kmer_vocab",
    "finetune": "groverlm.finetune",
    "nextkmer": "groverlm.nextkmer",
    "select-vocab": "groverlm.select_vocab",
}
MODULES = list(dict.fromkeys(COMMANDS.values()))  # each once, in listing order

# What carries each command on after Ctrl-C, as its code does it: (a flag the rerun adds, a flag it
# leaves out, what it keeps). The flag left out is named only when the stopped command had it: a
# rerun with it starts again (--overwrite discards finished seeds and checkpoints, --force redoes
# finished stages). tests/test_cli.py checks that every (sub)command has its line.
STARTS_OVER = ("", "", "it starts over")
CARRY_ON: dict[str, tuple[str, str, str]] = {
    "run": ("", "--force", "finished stages and parts are kept"),
    "demo": ("", "", "finished stages and parts are kept"),
    "data fetch": ("", "", "files already fetched are kept"),
    "genome summary": STARTS_OVER,
    "bpe train": ("--resume", "--overwrite", "it goes on from its last checkpoint"),
    "bpe export": ("--overwrite", "", "it starts over"),  # its half-written folder is refused else
    "corpus": STARTS_OVER,
    "pretrain": ("--resume", "--overwrite", "it goes on from its last checkpoint"),
    "plot-log": STARTS_OVER,
    "embed": ("", "", "it goes on after the last chunk saved"),
    "score seqs": ("", "", "it goes on after the last chunk saved"),
    "score variants": ("", "", "it goes on after the last chunk saved"),
    "ism": ("", "", "it goes on after the last chunk saved"),
    "analyze": ("", "", "finished analyses are kept"),
    "report": STARTS_OVER,
    "tasks prom300": STARTS_OVER,
    "tasks promscan": STARTS_OVER,
    "tasks ctcf": STARTS_OVER,
    "baselines tfidf": STARTS_OVER,
    "baselines cnn": ("", "--overwrite", "finished seeds are kept"),
    "compare": STARTS_OVER,
    "kmer-vocab": ("--overwrite", "", "it starts over"),  # as bpe export
    "finetune": ("", "--overwrite", "finished seeds and checkpoints are kept"),
    "nextkmer": ("", "--overwrite", "finished k and seeds are kept"),
    "select-vocab": ("", "--overwrite", "finished candidates and steps are kept"),
}


class Parser(argparse.ArgumentParser):
    """argparse with its errors (a missing or wrong option value) as one line, as every other user
    error: argparse would print the whole usage first and exit from inside parse_args.

    Long options are never abbreviated: argparse would read `--max-tr 5` as --max-train, and the
    same script would stop working, or mean another option, the day an option sharing that prefix
    is added. Every subcommand's parser is this class (add_subparsers makes its parent's kind)."""

    def __init__(self, *args, allow_abbrev: bool = False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)

    def error(self, message: str):
        raise GroverError(f"{message} (see {self.prog} --help)")  # main adds "groverlm: error:"

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """As argparse's, but an unknown option is reported by the (sub)command it was given to,
        whose --help lists the options (argparse reports it from the top-level parser)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self._command(args or []).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def _command(self, argv: list[str]) -> argparse.ArgumentParser:
        """The innermost subcommand parser the words of `argv` name (`bpe export`)."""
        parser: argparse.ArgumentParser = self
        for word in argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if not word.startswith("-") and subs and word in subs[0].choices:
                parser = subs[0].choices[word]
        return parser


def command_module(argv: list[str]) -> str | None:
    """The module that owns the command `argv` names; None for help, --version, no command or an
    unknown one (then every module registers: help lists all, argparse names the bad choice)."""
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return None
        if not arg.startswith("-"):  # the first word that is no top-level option (-v) is the command
            return COMMANDS.get(arg)
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `groverlm` parser; with `argv`, only the module owning its command is imported and
    registered (every module when it names none)."""
    owner = None if argv is None else command_module(argv)
    parser = Parser(
        prog="groverlm", description="GROVER DNA language model: genome-scale BPE vocabulary, BERT "
        "pretraining, vocabulary selection, genome-biology tasks, baselines and analyses.")
    parser.add_argument("--version", action="version", version=f"groverlm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="groverlm's debug log lines (and a system error's traceback)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in MODULES if owner is None else [owner]:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if not sys.stderr.isatty():
        # progress bars written to a file or pipe (a log, CI): a redraw every 5 s, not thousands
        # (tqdm reads TQDM_* variables as defaults for every bar, transformers' included)
        os.environ.setdefault("TQDM_MININTERVAL", "5")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except GroverError as err:
        print(f"groverlm: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = getattr(args, "out", None)
    fresh_out = isinstance(out, str) and not os.path.exists(out)

    def on_error(err: Exception) -> None:
        if args.verbose and not isinstance(err, GroverError):
            raise err  # -v: where the system refused, for a bug report
        if fresh_out and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)  # a stage made its output folder, then found a bad input: leave no trace

    # -v: our own debug lines only; the root at DEBUG let every library's through (matplotlib's
    # font search alone is 150 lines before a plot). Reset after: tests call main in-process
    ours = logging.getLogger("groverlm")
    level = ours.level
    if args.verbose:
        ours.setLevel(logging.DEBUG)
    try:
        return guarded(lambda: args.func(args), "groverlm", on_error,
                       carry_on(parser._command(argv).prog.removeprefix(f"{parser.prog} "), args))
    finally:
        ours.setLevel(level)


def carry_on(command: str, args: argparse.Namespace) -> str | None:
    """What to run to carry on `command` (`bpe train`) after Ctrl-C (`CARRY_ON`); None for a
    command the table lacks.

    >>> carry_on("pretrain", argparse.Namespace(overwrite=True))
    'rerun the same command with --resume, without --overwrite (it goes on from its last checkpoint)'
    """
    if command not in CARRY_ON:
        return None
    add, drop, kept = CARRY_ON[command]
    given = bool(drop) and bool(getattr(args, drop.removeprefix("--").replace("-", "_"), False))
    flags = [f"with {add}"] * bool(add) + [f"without {drop}"] * given
    return f"rerun the same command{' ' if flags else ''}{', '.join(flags)} ({kept})"


def guarded(main: Callable[[], int | None], prog: str | None = None,
            on_error: Callable[[Exception], None] | None = None, resume: str | None = None
            ) -> int:
    """`main()`'s exit status, with a GroverError or OSError printed as `PROG: error: ...` in one
    line and exit status 2, and Ctrl-C as 130 (`resume`: what to run to carry on, on the same
    line); anything else is a bug and keeps its traceback. `prog` defaults to the script's file
    name, as argparse's does; `on_error` sees the error first. A bench script ends
    `sys.exit(guarded(main))`."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        return int(main() or 0)
    except (GroverError, OSError) as err:
        if on_error:
            on_error(err)
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f"; to carry on, {resume}" if resume else ""),
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
