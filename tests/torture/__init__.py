"""The torture suite: real faults against real worker processes, checked in the Jepsen style.

See docs/reliability.md for the promise, the fault model, the scenarios and their figures.
"""
