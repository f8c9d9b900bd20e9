"""Ingest: a manifest of videos and images in, sampled clips and image sets out (Apache Beam).

The composite transform and ``run(argv)`` live in ``pipelines.ingest.pipeline``. This package
initializer imports nothing, so the modules the decoding sandbox loads (``media``, ``frames``,
``images``, ``phash``, ``fetch_web``) never pull in Apache Beam.
"""
