"""One module per sub-command; each defines ``register(subparsers)`` and an optional ``ORDER``."""
