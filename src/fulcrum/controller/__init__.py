"""The Controller: REST API, services, store and (later) reconcilers."""
