"""The answer engine: maps a decoded Query to an Answer, with no I/O."""
