"""Simulation: the virtual agent (a provider with no Amazon Connect behind it) and its state model."""
