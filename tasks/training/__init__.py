"""Training Human3R: the data (views, sources, mixtures), the step's parity harness (`parity`, `pack`,
`parity_rules`) and the loop."""
