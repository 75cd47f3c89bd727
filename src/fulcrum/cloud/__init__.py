"""Cloud connectors: create, observe and delete Service Engines and plumb VIPs (local, netns, OpenStack)."""
