"""Command line: ``jiahe serve | migrate | seed-demo | users create | areas import | import``."""

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


@cli.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="register | beneficiaries | migrants")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".xlsx or .csv")],
    village: Annotated[
        str | None, typer.Option(help="12-digit village code for rows that leave 村编码 empty")
    ] = None,
    county: Annotated[
        str | None, typer.Option(help="6-digit county the import acts for (default: the village's)")
    ] = None,
    do_commit: Annotated[
        bool, typer.Option("--commit", help="Write the valid rows (default: dry run)")
    ] = False,
    require_all: Annotated[
        bool, typer.Option(help="With --commit: write nothing unless every row is valid")
    ] = False,
) -> None:
    """Validate a file of one kind (register, beneficiaries, migrants; dry run) and, with
    --commit, write its valid rows: the same service and report as POST /api/v1/imports, acting
    as the county (a system actor)."""
    import uuid

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.authz.actor import Actor
    from app.core.security import FieldCipher
    from app.models.imports import ImportKind
    from app.models.users import Role
    from app.services import imports as svc

    try:
        import_kind = ImportKind(kind)
    except ValueError:
        typer.echo(f"error: KIND must be one of {', '.join(k.value for k in ImportKind)}", err=True)
        raise typer.Exit(2) from None
    county_code = county or (village[:6] if village else None)
    if not county_code or len(county_code) != 6 or not county_code.isdigit():
        typer.echo("error: give --county (6 digits) or --village (12 digits)", err=True)
        raise typer.Exit(2)
    if village is not None and not (
        len(village) == 12 and village.isdigit() and village.startswith(county_code)
    ):
        typer.echo("error: --village must be a 12-digit village code in the county", err=True)
        raise typer.Exit(2)
    actor = Actor(
        id=uuid.uuid4(),
        kind="user",
        role=Role.county,
        area_code=county_code + "000000",
        session_id=uuid.uuid4(),
        username="cli-import",
        display_name="jiahe import",
    )
    cipher = FieldCipher(get_settings())
    content = file.read_bytes()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    async def work(session: AsyncSession) -> tuple[object, object]:
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("validating", total=None)
            job, _new = await svc.validate_upload(
                session,
                actor,
                cipher,
                kind=import_kind,
                file_name=file.name,
                content=content,
                progress=lambda n: bar.advance(task, n),
                default_village=village,
            )
            bar.update(task, total=job.rows, completed=job.rows)
            result = None
            if do_commit:
                task = bar.add_task("writing", total=job.valid_rows)
                result = await svc.commit_import(
                    session,
                    actor,
                    cipher,
                    job.id,
                    require_all=require_all,
                    progress=lambda n: bar.advance(task, n),
                )
        return svc.import_report(job), result

    try:
        report, result = _run_in_session(work)
    except AppError as err:
        _fail(err)
        return
    from app.models.imports import CommitResult, ImportReport

    assert isinstance(report, ImportReport)
    typer.echo(
        f"import {report.id}: {report.rows} rows, {report.valid_rows} valid, {len(report.errors)} errors"
    )
    for e in report.errors[:50]:
        typer.echo(f"  row {e.row} {e.column}: {e.message} ({e.code})")
    if len(report.errors) > 50:
        typer.echo(f"  … {len(report.errors) - 50} more (GET /api/v1/imports/{report.id}/errors.xlsx)")
    if isinstance(result, CommitResult):
        typer.echo(f"committed: {result.created} created, {result.updated} updated, {result.skipped} skipped")
    elif not do_commit:
        typer.echo("dry run: nothing written (add --commit to write the valid rows)")


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
