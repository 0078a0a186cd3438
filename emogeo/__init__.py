"""Orchestration above the two libraries: ``repro`` makes runs (models, stimuli, extraction, generation,
steering), ``analysis`` reads them (descriptors, RSA, tables, figures, verify). ``emogeo.pipeline`` is the
end-to-end main job (`invoke reproduce`), the one place that uses both; neither library imports this package.
"""
