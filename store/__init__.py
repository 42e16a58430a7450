"""exdesk store: orders, worlds, the review queue, in one SQL database."""
