"""Benchmark evaluation: the metrics (metrics/), the benchmark loaders (benchmarks/), and the runner that evaluates a
model on them.

The runner, one concept per module: `identity` (what makes an evaluation's results what they are), `options`
(`EvalOptions`), `predict` (a sequence's frames through the network), `bodies` and `groundtruth` (SMPL files, the
ground truth posed as the reference poses it), `scoring` (predictions against ground truth: the rows of one
sequence), `averages` (a benchmark's average from stored rows), `store` (the `evaluations` table in and out),
`runner` (plan, one sequence, averages), `execute` (in this process or on the Ray actor pool), `pipeline` (the
Prefect tasks of the flow `evaluate-model`), `report` (the paper's tables) and `agreement` (two models without
ground truth: `human3r eval compare`).
"""
