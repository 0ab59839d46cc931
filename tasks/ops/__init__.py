"""Operational pieces: local Prefect services, the inbox watcher, dataset upkeep and generated sample footage."""
