"""The mesh: topology model, node backends, link probing, routing (no Ray here)."""
