"""Integrations with other libraries: :mod:`.transformers`, :mod:`.evaluate`."""
