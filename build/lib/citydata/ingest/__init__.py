"""Aggregation (归集): read departments' files, validate them, stage accepted rows per batch."""
