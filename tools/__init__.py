"""exdesk tools layer."""
