"""Record definitions, Molmo 2 text formats and frame sampling.

``schemas`` imports none of the project's other packages; everything else imports it.
"""
