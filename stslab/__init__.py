"""stslab: the certification test-lab harness for STS prepayment meters."""

__version__ = "0.1.0"
