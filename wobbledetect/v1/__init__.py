"""Generated gRPC stubs for the wobbledetect.v1 contract (``proto/wobbledetect/v1``).

Written by ``proto/generate.py``; do not edit. Regenerate with ``make protos``.
"""
