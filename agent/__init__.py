"""exdesk agent layer."""
