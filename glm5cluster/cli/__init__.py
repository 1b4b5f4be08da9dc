"""The composition root: builds connectors, renders with rich, maps errors to exit codes."""
