"""The one exception the storage decoder raises for a file it cannot trust."""


class StorageError(ValueError):
    """A storage file is truncated, corrupted, of an unsupported version, or inconsistent.

    Decoding either returns exactly the model that was encoded or raises this error; it never
    returns a different model.
    """
