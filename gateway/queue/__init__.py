"""Queued delivery: Send answers ACCEPTED once a job is in Redis Streams; workers deliver it."""
