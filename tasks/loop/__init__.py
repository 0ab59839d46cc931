"""The users' loop in one flow (`improve-model`, flows/improve.py): score the archive's tracks, select them by SQL,
build pseudo-labels, fine-tune the base model on them, evaluate base and tuned on the chosen benchmarks and on the
same videos (`compare`: how far the fine-tune moves the output), and report which is better, by how much, where.

Modules: `options` (:class:`ImproveOptions`), `selection` (what `where` selects, which videos are compared),
`verdict` (base against tuned: per metric, per video, one line; pure), `stages` (the Prefect tasks).
"""
