"""Mechanisms that several domains use, written once, below all of them: rate windows,
working-day clocks, credentials with hashed secrets, webhook delivery. A domain imports these;
these import no domain."""
