"""一网通办: service matters, cases, forms that fill themselves from the base databases through
the sharing service, docking of departments' own systems, and the platform's measures."""
