"""Label Studio projects: templates, push, pull, normalize and agreement."""
