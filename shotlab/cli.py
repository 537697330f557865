"""The `shotlab` command: a thin click group; each command imports its work when it runs.

Keep this module free of heavy imports: `shotlab --help` must not load torch, fiftyone or cv2.
"""

from __future__ import annotations

import click

from shotlab import __version__


class ShotlabGroup(click.Group):
    """Prints a ShotlabError in one line with its exit code; `--debug` shows the traceback.
    Ctrl-C exits 130 (128 + SIGINT, what shells and scripts expect), not click's 1."""

    def invoke(self, ctx: click.Context):
        from shotlab.core.errors import ShotlabError
        from shotlab.core.output import printable

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if ctx.meta.get("shotlab.debug"):  # re-raised, click would say "Aborted!", exit 1
                import traceback

                traceback.print_exc()
            click.echo("\nInterrupted.", err=True)
            ctx.exit(130)
        except Exception as exc:
            from shotlab.core.database import lost

            error = exc if isinstance(exc, ShotlabError) else lost(exc)  # the database went away
            if error is None or ctx.meta.get("shotlab.debug"):
                raise
            click.echo(printable(f"Error: {error}"), err=True)  # one line, as promised
            ctx.exit(error.exit_code)


@click.group(cls=ShotlabGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shotlab")
@click.option("--workspace", type=click.Path(file_okay=False), envvar="SHOTLAB_HOME",
              help="Folder for shotlab's database and extracted media [env SHOTLAB_HOME; "
                   "default ~/.shotlab].")
@click.option("--database-uri", envvar="SHOTLAB_DATABASE_URI", metavar="URI",
              help="Use this MongoDB instead of the workspace's own [env SHOTLAB_DATABASE_URI].")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, database_uri: str | None, debug: bool) -> None:
    """shotlab: curate small image datasets, train, export and explain, offline."""
    from shotlab.core import workspace as workspaces
    from shotlab.core.workspace import private_umask

    ctx.call_on_close(private_umask())  # what the command writes is the user's alone
    ctx.meta["shotlab.debug"] = debug
    # The one activation path for every command: before any stage imports FiftyOne or a library
    # that phones home (core/workspace.py sets the offline environment).
    workspaces.activate(workspace, database_uri)


def add_stage_groups() -> None:
    from shotlab.commands.augment_preview import augment_preview_command
    from shotlab.commands.check import check_command
    from shotlab.commands.explain_app import app_command
    from shotlab.commands.suggest import suggest_command
    from shotlab.curate.cli import curate
    from shotlab.explain import cli as explain_cli
    from shotlab.export import cli as export_cli
    from shotlab.serve import cli as serve_cli
    from shotlab.train.cli import train

    # Commands that join two stages live in the CLI layer (shotlab.commands), not in curate/.
    for command in (check_command, suggest_command, augment_preview_command):
        curate.add_command(command)
    explain_cli.explain.add_command(app_command)  # the page joins explain, export and runtime
    cli.add_command(curate)
    cli.add_command(train)
    for command in (*export_cli.COMMANDS, *explain_cli.COMMANDS, *serve_cli.COMMANDS):
        cli.add_command(command)


add_stage_groups()


def exit_on_sigterm() -> None:
    """SIGTERM (a service manager's stop, `kill`) ends the command as Ctrl-C does: `finally`
    blocks and exit handlers run (half-written outputs removed, a bundle zip's unpacked folder
    deleted) instead of the process vanishing mid-write. Exit status 143, as the signal's."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> None:
    exit_on_sigterm()
    try:
        cli(prog_name="shotlab")
    finally:
        # The command is done and its exit status set: a Ctrl-C now would land in an exit
        # handler (the workspace database's stop, pymongo's own thread joins), print an
        # "Exception ignored in atexit callback" traceback and leave the status 0.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
