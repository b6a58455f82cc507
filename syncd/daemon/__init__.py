"""`syncd run`: scheduling, runs and retries, watch routing, reload, the HTTP server."""
