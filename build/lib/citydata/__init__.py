"""citydata: a city government's data resource management platform."""

__version__ = "0.1.0"
