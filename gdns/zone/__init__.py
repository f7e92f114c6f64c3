"""Zone files: YAML loading with positions, validation, and the immutable zone set."""
