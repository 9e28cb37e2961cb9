"""User-facing errors: the CLIs print these as one line, without a traceback."""


class LandscapeError(Exception):
    """A problem with the user's input (data, checkpoint, run file, settings), not a bug."""


class DataNotFound(LandscapeError):
    pass


class CheckpointError(LandscapeError):
    pass


class RunFileError(LandscapeError):
    pass
