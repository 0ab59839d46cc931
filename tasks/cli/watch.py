"""`human3r watch INBOX`: report new footage to Prefect, which runs the `on-new-footage` deployment.

The logic lives in `tasks.ops.watch`; this module is the command only, registered lazily on the `human3r` group
(`tasks.cli.main`). It imports neither prefect nor watchfiles until it runs.
"""

from __future__ import annotations

import logging

import click


@click.command(context_settings={"max_content_width": 110})
@click.argument("inbox", type=click.Path(file_okay=False))
@click.option("--dataset", default=None, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root the triggered run writes (folder or s3://bucket/prefix) [default: the deployment's, "
                   "data/archive in the checkout].")
@click.option("--settle-seconds", "settle_s", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="A file has landed once its size and mtime stayed the same this long.")
@click.option("--max-wait-seconds", "max_wait_s", default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="Landed files wait for others still growing, to go in one event, at most this long.")
@click.option("--once", is_flag=True, help="Exit after the first event is sent.")
def watch(inbox: str, dataset: str | None, settle_s: float, max_wait_s: float, once: bool) -> None:
    """Watch INBOX (recursively) and emit a Prefect event when video files land and stop growing.

    \b
    Files that settle together go in one `human3r.footage.landed` event; the `on-new-footage` deployment
    (prefect.yaml) turns each event into one `reconstruct-archive` run over them, one run at a time; videos the
    dataset already holds are skipped. Hidden files and partial names (*.part, *.tmp, ...) are ignored; files
    already in INBOX when it starts are left to the nightly run. Needs a Prefect server: PREFECT_API_URL, e.g.
    from `eval "$(human3r services env)"` after `human3r demo`. Ctrl-C stops it.
    Example:
      eval "$(human3r services env)"; prefect --no-prompt deploy --name on-new-footage
      human3r watch /footage/inbox --dataset data/archive
    """
    import os

    from tasks.ops.watch import InboxWatcher, prefect_api_url, prefect_emitter

    logger = logging.getLogger("tasks.ops.watch")
    if not logging.getLogger().handlers:  # `human3r -v` configured logging already
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    if dataset and "://" not in dataset:
        dataset = os.path.abspath(dataset)  # the worker runs elsewhere (the checkout): send an absolute path
    watcher = InboxWatcher(inbox, print, settle_s=settle_s, max_wait_s=max_wait_s, dataset=dataset)
    api_url = prefect_api_url()  # after the inbox check: both are one-line errors, the inbox one is cheaper
    watcher.emit = prefect_emitter(api_url)
    logger.info("watching %s for video files (settled after %g s); events go to %s", watcher.inbox, settle_s,
                api_url)
    try:
        watcher.run(once=once)
    except KeyboardInterrupt:
        pass
    logger.info("stopped watching %s: %d event(s) sent", watcher.inbox, len(watcher.sent))
