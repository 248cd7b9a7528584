"""The one exception type for bad user input: the CLI prints it as a single line."""


class UserError(Exception):
    """Bad input (config value, missing file, mismatched checkpoint): exit non-zero, one line."""
