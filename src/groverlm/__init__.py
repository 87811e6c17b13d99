"""groverlm: the GROVER DNA language model pipeline, from genome-scale BPE to analyses."""

__version__ = "0.1.0"

from groverlm.errors import GroverError  # noqa: E402
from groverlm.genome import Genome, iter_records, summarize  # noqa: E402

__all__ = ["GroverError", "Genome", "iter_records", "summarize", "__version__"]
