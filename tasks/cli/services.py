"""`human3r services status|stop|env`: the local Prefect server and worker that `human3r demo` starts.

The services themselves are `tasks.ops.services`; this module is the command only, loaded lazily by the group.
"""

from __future__ import annotations

import click


@click.group()
def services() -> None:
    """The local Prefect server and worker that `human3r demo` starts."""


def _services_options(fn):
    fn = click.option("--port", type=int, default=None, envvar="HUMAN3R_PREFECT_PORT", help="Server port [4200].")(fn)
    return click.option("--home", default=None, envvar="HUMAN3R_HOME", help="State folder [.human3r].")(fn)


@services.command("status")
@_services_options
def services_status(home, port) -> None:
    """Is the server answering, is the worker running."""
    from tasks.ops.services import Services

    st = Services.from_env(home, port).status()
    click.echo(f"server: {st['server'] or 'not running'} (pid {st['server_pid']})")
    click.echo(f"worker: {'running, pid ' + str(st['worker_pid']) if st['worker_pid'] else 'not running'}")
    click.echo(f"state:  {st['home']}")


@services.command("stop")
@_services_options
def services_stop(home, port) -> None:
    """Stop the worker and the server started by `human3r demo`."""
    from tasks.ops.services import Services

    stopped = Services.from_env(home, port).stop()
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@services.command("env")
@_services_options
def services_env(home, port) -> None:
    """Print `export` lines so `prefect ...` commands talk to this server: eval "$(human3r services env)"."""
    from tasks.ops.services import Services

    for key, value in Services.from_env(home, port).env().items():
        click.echo(f"export {key}={value}")
