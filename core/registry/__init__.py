"""The workspace registry (SPEC §8): the token service an OCI distribution server trusts, digest
pinning at submission, and replication by digest to each backend's cloud registry.

Nothing here imports a cloud SDK at module level; ``targets`` imports boto3, google-auth or
azure-identity only when that target first needs credentials.
"""
