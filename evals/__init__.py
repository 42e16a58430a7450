"""exdesk evals layer."""
