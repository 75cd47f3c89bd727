"""The Service Engine agent: renders the controller's desired config for HAProxy and applies it."""
