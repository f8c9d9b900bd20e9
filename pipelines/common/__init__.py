"""What every pipeline reuses: the per-input error type and the decoding sandbox.

May import: ``schemas``, ``shards``. Never Apache Beam at module level (the sandbox child imports
these modules and must stay light).
"""
