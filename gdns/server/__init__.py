"""Transports (bytes on UDP and TCP) and the codec (wire format <-> Query/Answer)."""
