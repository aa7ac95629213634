"""The collector side: the progress API, the registry of collectors, built-in collectors."""
