"""QMS: queue management for Vietnamese public administrative service centers.

The parts and their layers are described in docs/architecture.md.
"""
