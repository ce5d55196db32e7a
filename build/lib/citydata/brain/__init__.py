"""一脑通用: the city's cockpit — one set of figures and pages for every department."""
