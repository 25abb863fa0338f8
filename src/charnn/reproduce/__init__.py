"""The seed's five experiments, the text statistics they compare, and the report with a verdict per claim."""

NAMES = ("overfit", "optimizers", "lr", "temperature", "analyze")   # the experiments, in report order
