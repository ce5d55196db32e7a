"""Accounts: people with roles, argon2 passwords, hashed API tokens."""
