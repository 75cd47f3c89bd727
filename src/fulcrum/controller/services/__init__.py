"""Business logic of the controller: objects, auth, events. Raises typed errors, never HTTP ones."""
