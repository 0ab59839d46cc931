"""Training Human3R: the data (views, sources, mixtures), the step and the loop."""
