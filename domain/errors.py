"""The one error root of exdesk. Adapters translate outside errors into these."""


class ExdeskError(Exception):
    """Base of every error exdesk raises on purpose. The message says what to do."""


class InputError(ExdeskError):
    """Input that cannot be used: names the file, line and field."""


class NotFound(InputError):
    """Something named that does not exist (a proposal, a user, an order)."""


class ToolError(ExdeskError):
    """A tool call that did not do what was asked."""


class ToolUnavailable(ToolError):
    """The outside system could not be reached or answered with an error."""

    def __init__(self, tool: str, detail: str = "") -> None:
        super().__init__(f"{tool} is unavailable{': ' + detail if detail else ''}")
        self.tool = tool


class ToolRejected(ToolError):
    """The outside system refused the request (bad arguments, state does not allow it)."""


class ApprovalError(ExdeskError):
    """An approval that cannot be accepted (wrong role, same person twice, stale plan)."""


class StaleDigest(ApprovalError):
    """A vote for a plan, order or policy that has changed since the voter looked at it."""


class NotAllowed(ExdeskError):
    """Someone tried what their role is not for (or gave no valid token)."""
