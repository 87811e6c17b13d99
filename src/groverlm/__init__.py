"""groverlm: the GROVER DNA language model pipeline, from genome-scale BPE to analyses."""

__version__ = "0.1.0"

from groverlm.embed import embed  # noqa: E402  (light: torch loads on first use, groverlm.lazy)
from groverlm.errors import GroverError  # noqa: E402
from groverlm.fasta import Genome, iter_records, summarize  # noqa: E402
from groverlm.score import score  # noqa: E402  (light too)

__all__ = ["GroverError", "Genome", "embed", "iter_records", "score", "summarize", "__version__"]
