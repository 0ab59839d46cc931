"""The capabilities: everything that joins the network (`human3r`) and the dataset (`storage`).

One package per capability, found by its folder name:

* `reconstruction/`: videos -> dataset rows (discover, plan, decode, the network, convert, write); Ray actors and
  the Prefect tasks of the archive pipeline.
* `labels/`: track quality scores and pseudo-labelled training sets built from the dataset.
* `scenes/`: fused scenes, rigged characters (GLB/BVH) and 4D recordings (Rerun).
* `ops/`: operational pieces: the local Prefect services, the inbox watcher, dataset upkeep, generated sample footage.
* `cli/`: the `human3r` command line, one module per command group.

`options` (run options shared by every capability: what the CLI, the flows, prefect.yaml and the actors take) and
`errors` (usage errors vs failures of one unit of work) sit at the top because every package uses them.
"""
