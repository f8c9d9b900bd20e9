"""Record definitions, Molmo 2 text formats, prompts and metrics, and frame sampling.

``schemas`` imports none of the project's other packages; everything else imports it.
"""
