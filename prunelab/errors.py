"""The one exception type for mistakes a user can fix (bad params, missing or bad files)."""


class UserError(Exception):
    """A problem the user can fix. Its message is one line and is shown without a traceback."""
