"""exdesk service layer."""
