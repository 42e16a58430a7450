"""exdesk audit layer."""
