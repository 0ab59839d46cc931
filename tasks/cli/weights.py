"""`human3r weights ...`: find, check, convert and download Human3R checkpoints (over `human3r.weights`).

Loaded lazily by the `human3r` group, which turns checkpoint errors into one line (exit 2); every command imports
torch only when it runs.
"""

from __future__ import annotations

import json

import click

SPEC_HELP = """SPEC is one of:

\b
  PATH                       official .pth, or our .safetensors (+ .json next to it)
  auto                       $HUMAN3R_CHECKPOINT, else the Hugging Face cache
  hf:faneggg/human3r/FILE    Hugging Face file (downloaded and cached)
  untrained:PRESET[:SEED]    random weights on purpose, for smoke runs
"""

_PRESET = click.option(
    "--preset",
    default=None,
    metavar="NAME",
    help="Model variant (672S, 672B, 672L, 896L, tiny). Released files describe themselves; needed for `tiny` "
    "files and for files without a constructor string. With `auto`, the file to prefer.",
)


def _print_identity(identity, as_json: bool) -> None:
    d = identity.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=1))
        return
    for key in ("path", "sha256", "preset", "model_version", "is_untrained"):
        click.echo(f"{key:14s}{d[key] if d[key] is not None else '-'}")


@click.group(name="weights", help="Find, check, convert and download Human3R checkpoints.\n\n" + SPEC_HELP)
def weights() -> None:
    pass


@weights.command(help="Print the file SPEC resolves to, its sha256, preset and model version.\n\n" + SPEC_HELP)
@click.argument("spec")
@_PRESET
@click.option("--download", is_flag=True, help="Download hf: specs that are not cached yet (default: cache only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def resolve(spec: str, preset: str | None, download: bool, as_json: bool) -> None:
    from human3r.weights import inspect_weights

    identity = inspect_weights(spec, preset=preset, download=download)
    _print_identity(identity, as_json)


@weights.command(
    help="Check PATH: sha256 (against --sha256 when given) and a strict key/shape match with the network it "
    "describes. Every mismatch is listed; keys the reference keeps but inference never reads are reported."
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--sha256", "expected", default=None, metavar="HEX", help="Expected sha256 of the file.")
@_PRESET
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(path: str, expected: str | None, preset: str | None, as_json: bool) -> None:
    from human3r.weights import verify_checkpoint

    identity = verify_checkpoint(path, preset=preset)
    if expected and expected.strip().lower() != identity.sha256:
        raise click.ClickException(
            f"sha256 mismatch for {path}: file {identity.sha256}, expected {expected.strip().lower()}. The file is "
            "corrupt or a different version; download it again."
        )
    _print_identity(identity, as_json)
    if not as_json:
        report = identity.report
        click.echo(f"{'keys':14s}OK (strict match)")
        if report is not None and (report.unused_present or report.unused_missing):
            click.echo(
                f"{'unused keys':14s}{len(report.unused_present)} present, {len(report.unused_missing)} absent "
                "(kept by the reference, never read at inference)"
            )


@weights.command(
    help="Convert SRC (any SPEC, usually an official .pth) to our format: DST.safetensors + DST.json. The load is "
    "strict; the model version of SRC is kept, so datasets made from either file share a key.\n\n" + SPEC_HELP
)
@click.argument("src")
@click.argument("dst", type=click.Path(dir_okay=False))
@_PRESET
def convert(src: str, dst: str, preset: str | None) -> None:
    from human3r.weights import load_model, save_checkpoint

    model = load_model(src, preset=preset)
    identity = model.identity
    if identity.is_untrained:
        raise click.ClickException("refusing to convert untrained weights; use an official checkpoint")
    out = save_checkpoint(model, dst, model_version=identity.model_version,
                          source={"spec": src, "file": identity.name, "sha256": identity.sha256})
    click.echo(f"wrote {out} and {out.with_suffix('.json')} (model version {identity.model_version})")


@weights.command(help="Download an official checkpoint FILE (default: the --preset's, else human3r_896L.pth).")
@click.argument("file", required=False)
@_PRESET
@click.option("--repo", default=None, metavar="OWNER/NAME", help="Hugging Face repository (default faneggg/human3r).")
def download(file: str | None, preset: str | None, repo: str | None) -> None:
    from human3r.weights import HF_REPO, download_official, file_sha256

    path = download_official(file, preset=preset, repo=repo or HF_REPO)
    click.echo(f"{'path':14s}{path}")
    click.echo(f"{'sha256':14s}{file_sha256(path)}")


if __name__ == "__main__":
    weights()
