"""The bundled Molmo 2 trainer: published samples in, a trained and exported transformers model out.

Holds: configs (``config``, ``configs/*.yaml``), the tiny offline model (``tiny``), the data path
(``mixture``, ``data``, ``sources``, ``processing``, ``packing``), the loss (``loss``), the model
and parallelism (``model``), the run (``recipe``, ``checkpoint``, ``progress``), validation
(``evaluate``) and export (``export``). May import ``schemas`` and ``shards`` only, never
``pipelines`` or ``annotation``: a trainer must run where only the published shards exist.
"""
