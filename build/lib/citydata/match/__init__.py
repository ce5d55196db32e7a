"""Record matching: Chinese-aware normalisation and a Splink model built from column kinds."""
