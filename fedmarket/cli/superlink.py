"""`fedmarket local-superlink stop`: stop what `flwr run` left running, by PID."""

from __future__ import annotations

from typing import Annotated

import typer

from fedmarket.cli.app import Group, Typer, app, friendly_errors
from fedmarket.progress import console

local_superlink_app = Typer(
    cls=Group,
    no_args_is_help=True,
    help="The local SuperLink `flwr run` starts for simulations and leaves running.",
)
app.add_typer(local_superlink_app, name="local-superlink")


@local_superlink_app.command("stop")
@friendly_errors
def stop_cmd(
    port: Annotated[
        int | None,
        typer.Option(help="Its HTTP port (default: $FLWR_LOCAL_SUPERLINK_HTTP_API_PORT or 39091)."),
    ] = None,
) -> None:
    """Stop the local SuperLink, and the SuperExec and runs it started, by PID."""
    # Found by the port `flwr run` talks to it on (Flower records no PID file), stopped by
    # PID: SIGTERM, then SIGKILL after 10 s.
    from fedmarket.deploy import local_superlink

    link = local_superlink.find(port)
    if link is None:
        where = port if port is not None else local_superlink.local_port()
        console.print(f"no local SuperLink is running (nothing listens on port {where})")
        return
    names = {p.pid: local_superlink.describe(p) for p in (link.process, *link.descendants)}
    stopped = local_superlink.stop(link)
    listed = ", ".join(f"{p.pid} ({names[p.pid]})" for p in stopped)
    console.print(f"stopped the local SuperLink on port {link.port}: pid {listed}", soft_wrap=True)
    console.print(
        "the next `flwr run` starts a new one with flwr's default of 2 SuperNodes: run "
        "`flwr federation simulation-config @none/default local --num-supernodes N` again",
        soft_wrap=True,
        highlight=False,
    )
