"""exdesk knowledge layer."""
