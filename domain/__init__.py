"""exdesk domain layer."""
