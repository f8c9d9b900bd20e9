"""Procedural data for the demo and the tests: seeded scenes and image sets with exact ground truth
and simulated annotators. Never used by a production pipeline."""
