"""Apache Beam pipelines (ingest, synthetic generators, build) and the code their workers run."""
