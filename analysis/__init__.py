"""emogeo analysis: RSA, inference, isotropy, decomposition, tables, figures and the report."""
