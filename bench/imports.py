"""Import bench (issue 17): a generated register workbook, dry run and commit timed.

    JIAHE_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/jiahe_bench_imports \\
      .venv/bin/python -m bench.imports --rows 100000

The database is dropped and created afresh (PostgreSQL) or the SQLite file removed, migrated
and given the demo county (``seed-demo``: 3 townships × 3 villages). The workbook (households of
1–5 people, valid unique ID numbers, dates in the four accepted formats, a phone on one row in
four) is written with openpyxl's write-only mode to ``bench/imports-<rows>.xlsx`` unless it is
there already. Both steps run in process through the service the API and ``jiahe import`` use,
acting as the county, each in its own transaction: ``validate_upload`` (read + every rule +
the blind-index lookups + storing the report) and ``commit_import``. Prints the times, the rows
per second and the peak resident memory after each step (``ru_maxrss``).

Then the two other kinds over the people just imported (``--other-rows``, default all): a
``beneficiaries`` workbook (one paid rural-reward claim of last year per person) and a
``migrants`` workbook (one outflow per person from her village), each dry run and committed
the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
VILLAGES = [f"430122{t}{v}" for t in ("100", "101", "102") for v in ("201", "202", "203")]
HEADERS = [
    "户编号",
    "村编码",
    "地址",
    "户类型",
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "与户主关系",
    "婚姻状况",
    "联系电话",
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "秀英桂兰建华志强文明海燕丽娟春梅国庆红霞小军"


def generate(path: Path, rows: int, seed: int) -> None:
    from openpyxl import Workbook

    from app.services.idnumber import generate_id_number

    rnd = random.Random(seed)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("导入")
    ws.append(HEADERS)
    start = date(1940, 1, 1)
    written = 0
    hh = 0
    # unique numbers: (birth date, sex, sequence) walks a grid; 100,000 rows use 100 sequences
    used: set[tuple[date, str, int]] = set()
    while written < rows:
        hh += 1
        village = VILLAGES[hh % len(VILLAGES)]
        size = min(rnd.randint(1, 5), rows - written)
        for k in range(size):
            while True:
                born = start + timedelta(days=rnd.randrange(0, 29000))
                sex = "male" if rnd.random() < 0.5 else "female"
                seq = rnd.randrange(0, 500)
                if (born, sex, seq) not in used:
                    used.add((born, sex, seq))
                    break
            number = generate_id_number(area_code="430122", birth_date=born, sex=sex, sequence=seq)
            fmt = written % 4
            born_cell: object = (
                born
                if fmt == 0
                else born.isoformat()
                if fmt == 1
                else f"{born.year}/{born.month}/{born.day}"
                if fmt == 2
                else born.strftime("%Y%m%d")
            )
            ws.append(
                [
                    f"H{hh}",
                    village,
                    f"{village[-3:]}村{hh % 20 + 1}组{hh}号",
                    "农村",
                    rnd.choice(SURNAMES) + rnd.choice(GIVEN) + rnd.choice(GIVEN),
                    number,
                    "男" if sex == "male" else "女",
                    born_cell,
                    "户主" if k == 0 else "其他",
                    "已婚" if k < 2 else "未婚",
                    f"139{rnd.randrange(10**8):08d}" if written % 4 == 0 else "",
                ]
            )
            written += 1
    wb.save(path)


def fresh_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            Path(parsed.database).unlink()
        return
    import asyncpg

    async def recreate() -> None:
        admin = parsed.set(database="postgres", drivername="postgresql")
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{parsed.database}"')
        finally:
            await conn.close()

    asyncio.run(recreate())


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def derived_workbooks(register_file: Path, limit: int | None) -> tuple[bytes, bytes]:
    """(beneficiaries, migrants) workbooks over the register workbook's people."""
    import io

    from openpyxl import Workbook
    from python_calamine import CalamineWorkbook

    from app.core import clock

    sheet = CalamineWorkbook.from_path(str(register_file)).get_sheet_by_index(0)
    lines = sheet.to_python()
    header = [str(h) for h in lines[0]]
    at_id, at_village = header.index("身份证号"), header.index("村编码")
    people = [(str(line[at_id]), str(line[at_village])) for line in lines[1:]][:limit]
    last = clock.today().year - 1

    def book(headers: list[str], rows: list[list[object]]) -> bytes:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("导入")
        ws.append(headers)
        for row in rows:
            ws.append(row)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    claims = book(
        ["身份证号", "项目", "年度", "金额", "开户行", "账号"],
        [
            [n, "农村部分计划生育家庭奖励扶助", last, "960", "望城农商银行", f"62309{i:011d}"]
            for i, (n, _) in enumerate(people)
        ],
    )
    moves = book(
        ["身份证号", "姓名", "方向", "村编码", "流动日期", "原籍/去向", "单位"],
        [[n, "某人", "流出", v, f"{last}-06-01", "广东东莞", "电子厂"] for n, v in people],
    )
    return claims, moves


async def run(rows_file: Path, other_rows: int | None = None) -> None:
    from app.authz.actor import Actor
    from app.core.config import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.core.security import FieldCipher
    from app.models.imports import ImportKind
    from app.models.users import Role
    from app.services import imports as svc

    settings = get_settings()
    engine = make_engine(settings)
    cipher = FieldCipher(settings)
    actor = Actor(
        id=uuid.uuid4(), kind="user", role=Role.county, area_code="430122000000", session_id=uuid.uuid4()
    )
    content = rows_file.read_bytes()
    try:
        sm = make_sessionmaker(engine)
        started = time.perf_counter()
        async with sm() as session:
            job, _ = await svc.validate_upload(
                session, actor, cipher, kind=ImportKind.register, file_name=rows_file.name, content=content
            )
            await session.commit()
            job_id, rows, valid, errors = job.id, job.rows, job.valid_rows, len(svc.import_report(job).errors)
        dry = time.perf_counter() - started
        print(
            f"dry_run rows={rows} valid={valid} errors={errors} seconds={dry:.1f} "
            f"rows_per_s={rows / dry:.0f} peak_rss_mib={peak_mib():.0f}"
        )
        started = time.perf_counter()
        async with sm() as session:
            result = await svc.commit_import(session, actor, cipher, job_id, require_all=False)
            written = time.perf_counter() - started
            await session.commit()  # the figures' kept state is rebuilt for the county here
        took = time.perf_counter() - started
        print(
            f"commit created={result.created} updated={result.updated} skipped={result.skipped} "
            f"seconds={took:.1f} (writes {written:.1f}, commit with figures rebuild {took - written:.1f}) "
            f"rows_per_s={valid / took:.0f} peak_rss_mib={peak_mib():.0f}"
        )
        claims, moves = derived_workbooks(rows_file, other_rows)
        for kind, content in ((ImportKind.beneficiaries, claims), (ImportKind.migrants, moves)):
            started = time.perf_counter()
            async with sm() as session:
                job, _ = await svc.validate_upload(
                    session, actor, cipher, kind=kind, file_name=f"{kind.value}.xlsx", content=content
                )
                await session.commit()
                job_id, rows, valid = job.id, job.rows, job.valid_rows
            dry = time.perf_counter() - started
            started = time.perf_counter()
            async with sm() as session:
                result = await svc.commit_import(session, actor, cipher, job_id, require_all=False)
                await session.commit()
            took = time.perf_counter() - started
            print(
                f"{kind.value} rows={rows} valid={valid} dry_run_seconds={dry:.1f} "
                f"rows_per_s={rows / dry:.0f} commit_created={result.created} commit_seconds={took:.1f} "
                f"rows_per_s={valid / took:.0f} peak_rss_mib={peak_mib():.0f}"
            )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--other-rows",
        type=int,
        default=None,
        help="rows of the beneficiaries and migrants files (default: all)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("JIAHE_DATABASE_URL", "sqlite+aiosqlite:///./bench-imports.db"),
    )
    args = parser.parse_args()
    os.environ["JIAHE_DATABASE_URL"] = args.database_url
    os.chdir(ROOT)
    path = ROOT / "bench" / f"imports-{args.rows}.xlsx"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.rows, args.seed)
        print(
            f"generated {path.name} bytes={path.stat().st_size} seconds={time.perf_counter() - started:.1f}"
        )
    fresh_database(args.database_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for step in (["migrate"], ["seed-demo"]):
        subprocess.run(
            [sys.executable, "-m", "app.cli", *step], check=True, env=env, stdout=subprocess.DEVNULL
        )  # noqa: S603
    asyncio.run(run(path, args.other_rows))


if __name__ == "__main__":
    main()
