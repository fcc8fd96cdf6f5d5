"""The peer comparison: one adapter module per system, run by ``bench.peers.driver`` in the system's venv."""
