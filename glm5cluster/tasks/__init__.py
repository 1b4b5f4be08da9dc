"""Tasks: pure functions from (context, facts) to commands or a no-op reason."""
