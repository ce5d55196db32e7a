"""The audit chain: who read what, when and why — every read of shared or personal data."""
