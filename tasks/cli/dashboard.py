"""`human3r dashboard --root ROOT`: serve the read-only web dashboard over a dataset (the app is in `dashboards`).

This module is the command only, registered lazily on the `human3r` group (`tasks.cli.main`); it imports the web stack
(FastAPI, uvicorn, plotly) only when it runs. It opens the dataset and binds the socket before serving, so a missing
dataset or a port in use is one red line (exit 2), not a traceback.
"""

from __future__ import annotations

import click


@click.command(context_settings={"max_content_width": 110})
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root: a folder or s3://bucket/prefix (S3 endpoint from ?endpoint_override= or "
                   "AWS_ENDPOINT_URL).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is reachable from this machine only; 0.0.0.0 shows the dataset "
                   "to anyone who can reach this machine (there is no login).")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port; 0 picks a free one (the URL is printed).")
@click.option("--refresh-seconds", "refresh_s", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="Check at most this often whether the dataset changed (a run committed, a failure recorded); "
                   "when it did, the next page load reads the new snapshot.")
@click.option("--sql-timeout", "sql_timeout_s", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a query on the SQL page may run before it is stopped.")
@click.option("--sql-max-rows", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Rows the SQL page shows by default (a user may ask for up to 10x this).")
@click.option("--csv-max-rows", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Rows a CSV download holds at most.")
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
def dashboard(root: str, host: str, port: int, refresh_s: float, sql_timeout_s: float, sql_max_rows: int,
              csv_max_rows: int, access_log: bool) -> None:
    """Serve a read-only web dashboard over the dataset at ROOT (Ctrl-C stops it).

    \b
    Pages:
      /         overview: videos, hours, frames, people, tracks, points; runs over time; failures; model versions
      /videos   every video, paginated and searchable
      /video/ID one video: camera and track paths from above, people per frame, head speeds, and a frame
                scrubber (source frame with projected joints beside a 3D view of that frame)
      /sql      read-only SQL with a row and a time limit, CSV download, the README's recipes
    Works offline (plotly.js comes from the plotly package). Nothing is written: the dashboard reads through the
    catalog's read-only connection, and opens no file but the dataset's and the source videos it names.
    Example:
      human3r dashboard --root data/demo          # then open http://127.0.0.1:8050/
    """
    from dashboards.app import create_app, serve
    from tasks.ops.listen import LOOPBACK, bind, shown_host

    app = create_app(root, host=host, refresh_s=refresh_s, sql_timeout_s=sql_timeout_s, sql_max_rows=sql_max_rows,
                     csv_max_rows=csv_max_rows)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    click.echo(f"dashboard of {root} at http://{shown_host(host)}:{bound_port}/ (Ctrl-C stops it)", err=False)
    if host not in LOOPBACK:
        click.secho(f"warning: listening on {host}: anyone who can reach this machine can read the dataset",
                    fg="yellow", err=True)
    try:
        serve(app, sock, log_level="info" if access_log else "warning")
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: uvicorn shut down cleanly, then re-raised it
        click.echo("dashboard stopped")
    finally:
        sock.close()
        app.state.snapshot.close()
