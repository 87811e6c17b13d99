"""Analyses of a vocabulary and a model: token statistics and embeddings (tokens), contextual
self-similarity (context), window embeddings against genome annotations (annotations), and the HTML
report of a whole run (report). `groverlm analyze` runs them; `groverlm report` renders a run."""
