"""glt-bench core: CLI, registries, manifests, protocols, metrics, data, engine and run records."""

__version__ = "0.1.0"
