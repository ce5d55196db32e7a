"""运维 operations: backup and restore, the scheduled work, metrics."""
