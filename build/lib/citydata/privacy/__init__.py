"""Personal data protection: masks, judged jointly."""
