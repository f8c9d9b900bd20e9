"""The ``molmo2-data`` command line. It only dispatches to the five packages."""
__version__ = "0.1.0"
