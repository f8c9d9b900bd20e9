"""Synthetic generators: CapQA, SubtitleQA and SynMultiImageQA (Apache Beam), with pluggable text backends.

Modules: ``config`` (typed settings, ``configs/synth.yaml``), ``args`` (the command's options),
``prompts`` (versioned prompt files in ``prompts/``), ``backends`` (``template``), ``endpoint``
(``openai``), ``local_lm`` (``transformers``), ``cache`` (the response cache), ``facts`` (a clip's
structured data), ``programs`` (template questions about clips), ``cosyn`` (data, images and
computed questions of image sets), ``filters`` (replies to records and failures), ``steps``
(shared Beam steps), ``video`` (``GenerateCapQA``, ``GenerateSubtitleQA``), ``image_sets``
(``GenerateSynMultiImageQA``), ``outputs`` (the record folder), ``pipeline`` (``run``).

May import: ``schemas``, ``shards``, ``annotation`` and ``pipelines.common`` / ``pipelines.render``.
"""
