"""Publish: merge media and records into versioned, validated WebDataset datasets.

Modules, in the order data flows: ``config`` (settings), ``inputs`` (find and pin inputs),
``join`` (read, apply reviews, join records with media), ``validate`` (record rules, Great
Expectations), ``samples`` (what a sample is), ``rules`` (dataset rules), ``shard_plan``
(deterministic shard assignment), ``pipeline`` (the Beam composite), ``stats``, ``preview``,
``card``, ``report``, ``finalize`` (assemble and commit one dataset), ``version`` (plan, run,
refuse or skip), ``storage`` (local or fsspec writes).
"""
