"""Genome-biology tasks: builders (Prom300, PromScan, CTCF) and the task-folder reader.

A task folder holds train.csv, dev.csv, test.csv (sequence,label[,chrom,start,end,strand]) and, when
we built it, manifest.json. Builders: `build_prom300`, `build_promscan`, `build_ctcf`; every
consumer reads a folder (ours or a GUE one) with `load_task`.
"""

from groverlm.tasks.common import Example, SplitConfig, split_examples, write_task
from groverlm.tasks.context import GenomeContextTokenizer
from groverlm.tasks.ctcf import CTCFConfig, build_ctcf, read_jaspar
from groverlm.tasks.gue import Split, Task, load_task
from groverlm.tasks.promoter import Prom300Config, build_prom300
from groverlm.tasks.promscan import PromScanConfig, build_promscan

__all__ = [
    "CTCFConfig", "Example", "GenomeContextTokenizer", "Prom300Config", "PromScanConfig", "Split",
    "SplitConfig", "Task", "build_ctcf", "build_prom300", "build_promscan", "load_task",
    "read_jaspar", "split_examples", "write_task",
]
