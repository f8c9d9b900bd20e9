"""Apache Beam pipelines and the code their workers run, one subpackage per job.

- ``pipelines.common``: what every pipeline reuses (per-input errors, the decoding sandbox).
- ``pipelines.ingest``: manifest -> sampled clips and image sets.
- ``pipelines.render``: known data (shapes, charts, tables, documents, diagrams) to deterministic PNGs.
- ``pipelines.procedural``: seeded scenes, image sets and simulated annotators (demo and tests only).

May import ``schemas``, ``shards`` and ``annotation``; never ``training``.
"""
