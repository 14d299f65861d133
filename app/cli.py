"""Command line: ``jiahe serve | migrate | seed-demo | users create | areas import``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import ConfigError, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import AppError
from app.core.logging import configure_logging
from app.core.migrations import head_revisions, schema_is_current, upgrade

T = TypeVar("T")

cli = typer.Typer(help="Jiahe 家和 service", no_args_is_help=True, add_completion=False)
users_cli = typer.Typer(help="Manage users", no_args_is_help=True)
areas_cli = typer.Typer(help="Manage areas", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
cli.add_typer(areas_cli, name="areas")


def _run_in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One transaction around ``work``, committed on success."""
    settings = get_settings()

    async def _main() -> T:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(_main())


def _fail(err: AppError) -> None:
    typer.echo(f"error: {err.detail} ({err.code})", err=True)
    for e in err.errors or []:
        typer.echo(f"  {e.field}: {e.message}", err=True)
    raise typer.Exit(1)


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the latest migration."""
    settings = get_settings()
    upgrade(settings.database_url)
    typer.echo(f"schema at {', '.join(sorted(head_revisions(settings.database_url)))}")


def _schema_current() -> bool:
    settings = get_settings()

    async def _check() -> bool:
        engine = make_engine(settings)
        try:
            return await schema_is_current(engine, settings.database_url)
        finally:
            await engine.dispose()

    return asyncio.run(_check())


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    do_migrate: Annotated[
        bool, typer.Option("--migrate", help="Upgrade the schema first if it is behind")
    ] = False,
) -> None:
    """Serve the API (refuses an outdated schema unless --migrate)."""
    import uvicorn

    try:
        settings = get_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    if not _schema_current():
        if not do_migrate:
            typer.echo(
                "error: database schema is not current; run `jiahe migrate` or pass --migrate",
                err=True,
            )
            raise typer.Exit(3)
        upgrade(settings.database_url)
    uvicorn.run("app.main:app", **uvicorn_options(host=host, port=port, workers=workers))


def uvicorn_options(*, host: str, port: int, workers: int) -> dict[str, Any]:
    """How ``jiahe serve`` runs uvicorn. ``proxy_headers=False``: uvicorn would otherwise
    rewrite the client address from ``X-Forwarded-For`` for any loopback peer (its default
    ``FORWARDED_ALLOW_IPS``), under the rate limits and the login throttle; the app decides
    the address itself, trusting only ``JIAHE_FORWARDED_ALLOW_IPS``. Its access log is off:
    it prints full URLs, whose queries may carry an ID number (our request log replaces it)."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
    }


@cli.command("seed-demo")
def seed_demo() -> None:
    """Create the demo county 430122 with users of every role and life in its villages: people,
    a year of events, a checkup round in progress, claims at every step (idempotent)."""
    import time

    from app.core.security import FieldCipher
    from app.services.demo import DEMO_USERS, demo_counts
    from app.services.demo import seed_demo as run

    cipher = FieldCipher(get_settings())
    started = time.perf_counter()
    created = _run_in_session(lambda s: run(s, cipher))
    people = _run_in_session(demo_counts)
    elapsed = time.perf_counter() - started
    typer.echo(f"demo ready ({created} new rows, {people} people, {elapsed:.1f} s). Users (password):")
    for username, password, role, _area, _name in DEMO_USERS:
        typer.echo(f"  {username:<14} {password:<20} {role}")


@cli.command("figures-rebuild")
def figures_rebuild(
    county: Annotated[str | None, typer.Option(help="6-digit county code (default: every county)")] = None,
) -> None:
    """Recompute the figures' kept state (tallies, data-quality flags) from the register, after
    rows were written around the API (an import by SQL, a restore)."""
    from app.services.indicator_upkeep import rebuild

    async def work(session: AsyncSession) -> None:
        await session.run_sync(lambda s: rebuild(s.connection(), county))

    _run_in_session(work)
    typer.echo(f"figures rebuilt for {county or 'every county'}")


@cli.command("seed-scale")
def seed_scale(
    persons: Annotated[int, typer.Option(min=0, help="People the county should hold")],
    county: Annotated[str, typer.Option(help="6-digit county code")] = "430122",
    townships: Annotated[int, typer.Option(min=1, help="Townships in the county")] = 20,
    villages: Annotated[int, typer.Option(min=1, help="Villages per township")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same county)")] = 1,
    events_year: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Add a year of events (births, deaths, visits, migrants, claims) for this year; "
            "default: last calendar year; 0: none. Kinds already there for that year are skipped.",
        ),
    ] = None,
) -> None:
    """Generate a synthetic county of N people for load tests (skips when already there)."""
    import time

    from app.core.security import FieldCipher
    from app.services.scale import seed_events
    from app.services.scale import seed_scale as run

    cipher = FieldCipher(get_settings())
    started = time.perf_counter()
    counts = _run_in_session(
        lambda s: run(
            s,
            cipher,
            persons=persons,
            county_code=county,
            townships=townships,
            villages_per_township=villages,
            seed=seed,
        )
    )
    elapsed = time.perf_counter() - started
    if counts["skipped"]:
        typer.echo(f"already seeded: county {county} has {counts['persons_total']} persons")
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()) + f" elapsed_s={elapsed:.1f}")
    year = clock.today().year - 1 if events_year is None else events_year
    if year == 0:
        return
    started = time.perf_counter()
    try:
        events = _run_in_session(lambda s: seed_events(s, cipher, year=year, county_code=county, seed=seed))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started
    # -1: that kind was already there for the year (skipped). Keys differ from the line above,
    # which bench scripts parse.
    shown = " ".join(f"{k}={'present' if v < 0 else v}" for k, v in events.items())
    typer.echo(f"events events_year={year} {shown} events_elapsed_s={elapsed:.1f}")


@users_cli.command("create")
def users_create(
    username: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option()],
    area: Annotated[str, typer.Option(help="12-digit area code")],
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a user; the password is read from standard input."""
    from pydantic import ValidationError

    from app.models.users import UserCreate
    from app.services.users import create_user

    password = sys.stdin.readline().rstrip("\n")
    try:
        data = UserCreate(
            username=username,
            password=password,
            role=role,  # type: ignore[arg-type]
            area_code=area,
            display_name=display_name or username,
        )
    except ValidationError as exc:
        for e in exc.errors():
            typer.echo(f"error: {'.'.join(map(str, e['loc']))}: {e['msg']}", err=True)
        raise typer.Exit(1) from None
    try:
        user = _run_in_session(lambda s: create_user(s, None, data))
    except AppError as err:
        _fail(err)
        return
    typer.echo(f"created user {user.username} ({user.id})")


@areas_cli.command("import")
def areas_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Import areas from a CSV with header code,name (all rows or none)."""
    from app.services.areas import import_areas

    content = file.read_bytes()
    try:
        report = _run_in_session(lambda s: import_areas(s, content))
    except AppError as err:
        _fail(err)
        return
    typer.echo(f"imported: {report.created} created, {report.renamed} renamed, {report.unchanged} unchanged")


@cli.command("gen-secrets")
def gen_secrets() -> None:
    """Print fresh production secrets as .env lines (JWT key, field key, blind-index key)."""
    import base64
    import json
    import secrets as pysecrets

    from app.core.config import new_ec_private_pem

    kid = "k" + pysecrets.token_hex(3)
    lines = {
        "JIAHE_JWT_PRIVATE_KEYS": json.dumps({kid: new_ec_private_pem()}),
        "JIAHE_JWT_ACTIVE_KID": kid,
        "JIAHE_FIELD_KEYS": json.dumps({"f1": base64.b64encode(pysecrets.token_bytes(32)).decode()}),
        "JIAHE_FIELD_ACTIVE_KEY_ID": "f1",
        "JIAHE_BLIND_INDEX_KEY": base64.b64encode(pysecrets.token_bytes(32)).decode(),
    }
    for key, value in lines.items():
        typer.echo(f"{key}='{value}'")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
