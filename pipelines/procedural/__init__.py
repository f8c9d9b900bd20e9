"""Procedural data for the demo and the tests: seeded scenes with exact ground truth and simulated
annotators. Never used by a production pipeline."""
