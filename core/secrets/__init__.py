"""Secret stores (the ``SecretStore`` port's adapters, one per file) and the helpers that keep
``{secret: name}`` values out of stored records, responses and log lines. ``core.bootstrap``
picks the adapter from ``TRAIN_SECRETS``; nothing here imports a cloud SDK at import time."""
