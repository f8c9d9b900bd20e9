"""Trainer that streams published shards into the transformers Molmo 2 model."""
