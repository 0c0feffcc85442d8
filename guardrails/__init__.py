"""Checks on answers before they are final, each a ``Guard`` (``answer.types``)."""
