"""The seven base databases: staged rows resolved into master records with provenance."""
