"""The store: engines and sessions, the declarative base, keyset paging."""
