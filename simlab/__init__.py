"""SimLab: a simulated STS test bench.

A meter (built on the reference meter process in :mod:`sts`) and every bench instrument,
each served on the transport a real device uses: ptys for serial devices, TCP for SCPI,
HTTP for the camera. SimLab knows nothing of the harness.
"""
