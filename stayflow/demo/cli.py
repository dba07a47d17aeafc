"""``stayflow demo`` and ``stayflow demo advance``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

DEFAULT_FOLDER = "stayflow-demo"
MAX_ADVANCE_DAYS = 3650


@click.group(invoke_without_command=True)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="stayflow's port.",
)
@click.option(
    "--site-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="The business site's port [default: port + 1].",
)
@click.option(
    "--sandbox-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="The Stripe sandbox's port [default: port + 2].",
)
@click.option("--reset", is_flag=True, help="Forget the kept demo and start a new one.")
@click.option(
    "--state-dir",
    default=DEFAULT_FOLDER,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its state.",
)
@click.option(
    "--days",
    default=90,
    hidden=True,
    type=click.IntRange(2, 365),
    help="Days of history a new demo plays (tests play fewer).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    port: int,
    site_port: int | None,
    sandbox_port: int | None,
    reset: bool,
    state_dir: str,
    days: int,
) -> None:
    """Run the whole product on this machine: Stripe sandbox, stayflow, a business site and
    90 days of history. Restarting keeps the demo; Ctrl-C stops it."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"state_dir": state_dir}
        return
    from stayflow.demo.runner import Demo, DemoError

    ports = [port, site_port or port + 1, sandbox_port or port + 2]
    if len(set(ports)) != 3 or max(ports) > 65535:
        raise click.UsageError("stayflow, the site and the sandbox need three different ports")
    runner = Demo(Path(state_dir).resolve(), *ports, days=days)

    def on_signal(_signum: int, _frame: Any) -> None:
        runner.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        runner.start(reset=reset)
        click.echo(runner.banner())
        runner.wait()
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runner.stop()
    click.echo("stayflow demo stopped; `stayflow demo` starts it again where it was.")


@demo.command()
@click.option(
    "--days",
    required=True,
    type=click.IntRange(1, MAX_ADVANCE_DAYS),
    help="How many days to move the sandbox's clock forward.",
)
@click.pass_context
def advance(ctx: click.Context, days: int) -> None:
    """Move the running demo's Stripe clock forward (renewals run; attribution follows)."""
    import httpx

    from stayflow.demo import state as demo_state

    folder = Path(ctx.obj["state_dir"]).resolve()
    kept = demo_state.load(folder)
    if kept is None:
        raise click.ClickException(f"no demo in {folder}: start one with `stayflow demo`")
    try:
        answer = httpx.post(
            f"{kept.sandbox_url}/_sandbox/clock", json={"advance": days * 86400}, timeout=120.0
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"the demo's sandbox at {kept.sandbox_url} does not answer ({exc}); "
            "is `stayflow demo` running?"
        ) from exc
    if answer.status_code != 200:
        raise click.ClickException(f"the sandbox refused: {answer.text[:300]}")
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(int(answer.json()["now"]), UTC)
    click.echo(f"the demo's clock is now {now:%Y-%m-%d %H:%M} UTC (moved {days} days)")
