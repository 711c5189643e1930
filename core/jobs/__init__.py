"""Background work on arq (Redis): delivery of top-ups, notifications, the sweeper."""
