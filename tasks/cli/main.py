"""The `human3r` command: the group, its error handling, and the table printer the commands share.

Every command lives in a module of this package, one per command group (`dataset`: query, schema, synth, vacuum,
compact, migrate; `reconstruct`: reconstruct, demo; `services`; `watch`; `weights`; `scenes`: fuse, export, view;
`labels`; `dashboard`; `parity`; `eval`; `live`; `train`), listed in `_Group.LAZY` and imported only when its
command runs, so `human3r --help` does not import torch.

Errors we raise on purpose (a bad option value, a missing dataset, a checkpoint that does not match, ...) and
click's own usage errors become one red line on stderr, never a traceback: exit code 2 when nothing was done
(usage), 1 when some videos failed. `human3r -v` shows debug logs, with the traceback of unexpected failures.
"""

from __future__ import annotations

import json
import logging
import sys

import click

# Errors meaning 'the invocation or its inputs are wrong' (exit 2), by module (a module never imported raised none).
_KNOWN_ERRORS = (
    ("tasks.errors", "UsageError"),
    ("storage.errors", "StorageError"),
    ("human3r.errors", "Human3RError"),
    ("pydantic", "ValidationError"),
)


def _known_errors() -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in _KNOWN_ERRORS if m in sys.modules)


def _one_line_error(err: BaseException) -> str:
    if type(err).__name__ == "ValidationError":
        from tasks.options import describe_validation_error

        return describe_validation_error(err)
    return str(err).strip() or type(err).__name__


class _Group(click.Group):
    """Loads the commands of other modules when they are used, and turns expected errors into one line."""

    # command -> (module, attribute): one module per command group, imported only when its command runs
    LAZY = {
        **{name: ("tasks.cli.dataset", name) for name in ("query", "schema", "synth", "vacuum", "compact", "migrate")},
        "reconstruct": ("tasks.cli.reconstruct", "reconstruct"),
        "demo": ("tasks.cli.reconstruct", "demo"),
        "services": ("tasks.cli.services", "services"),
        "watch": ("tasks.cli.watch", "watch"),
        "weights": ("tasks.cli.weights", "weights"),
        **{name: ("tasks.cli.scenes", name) for name in ("fuse", "export", "view")},
        "labels": ("tasks.cli.labels", "labels"),
        "dashboard": ("tasks.cli.dashboard", "dashboard"),
        "parity": ("tasks.cli.parity", "parity"),
        "eval": ("tasks.cli.eval", "eval_"),
        "live": ("tasks.cli.live", "live"),
        "train": ("tasks.cli.train", "train"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            import importlib

            module, attr = self.LAZY[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.secho("aborted", fg="red", err=True)
            sys.exit(1)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.secho(f"error: {err.format_message()}{hint}", fg="red", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.secho(f"error: {err.format_message()}", fg="red", err=True)
            sys.exit(err.exit_code)
        except _known_errors() as err:
            click.secho(f"error: {_one_line_error(err)}", fg="red", err=True)
            sys.exit(2)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, with tracebacks of unexpected failures.")
def cli(verbose: bool) -> None:
    """Human3R archive: turn videos into a queryable 4D dataset of people and scenes.

    \b
    Typical use:
      human3r demo                                   # sample footage through Prefect + Ray into data/demo
      human3r reconstruct clips/ --out data/archive  # videos -> dataset, in this process
      human3r query --root data/demo "SELECT count(*) FROM humans"
      human3r schema                                 # every table and column, with units and frames
      human3r weights resolve auto                   # which checkpoint would be used
    """
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s", force=True)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        inner = ", ".join(_cell(v) for v in value[:4])
        return f"[{inner}{', …' if len(value) > 4 else ''}]"
    return str(value)


def _json_default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def print_table(table, *, fmt: str = "table", max_rows: int = 200, out=None) -> None:
    """Print an Arrow table as a rich table, CSV (lists as JSON) or JSON records."""
    out = out or sys.stdout
    rows = table.to_pylist()
    if fmt == "json":
        out.write(json.dumps(rows, default=_json_default) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow([json.dumps(v, default=_json_default) if isinstance(v, list | dict) else
                             ("" if v is None else v) for v in row.values()])
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_lines=False, header_style="bold")
        for name in table.column_names:
            t.add_column(name, overflow="fold")
        for row in rows[:max_rows]:
            t.add_row(*(_cell(v) for v in row.values()))
        console = Console(file=out, width=max(100, min(200, 24 * len(table.column_names))))
        console.print(t)
        if len(rows) > max_rows:
            console.print(f"[dim]{len(rows) - max_rows} more rows not shown (use --format csv or json for all)[/]")
        else:
            console.print(f"[dim]{len(rows)} row{'s' if len(rows) != 1 else ''}[/]")


ROOT_HELP = ("Dataset root: a folder or s3://bucket/prefix (S3 endpoint from ?endpoint_override= or "
             "AWS_ENDPOINT_URL).")


def main() -> None:
    cli(prog_name="human3r")


if __name__ == "__main__":
    main()
