"""Member health: produced by monitors (and, for now, configured statuses), read by the
answer engine through an immutable snapshot that is replaced whole, never mutated."""
