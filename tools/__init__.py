"""Tools around the library (environment checks, smoke tests); not imported by repro/ or analysis/."""
