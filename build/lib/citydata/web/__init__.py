"""The web shell: app factory, authentication, pages and static assets."""
