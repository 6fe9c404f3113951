"""What is wrong with a user's data: the error that refuses it and the warning that lets it through.
A leaf module, so that every reader of data files can raise them without importing the others."""


class DataError(ValueError):
    """User data that cannot be used; the message names what is wrong."""


class DataWarning(UserWarning):
    """Usable data with a gap the user should know of (a class missing from the test split)."""
