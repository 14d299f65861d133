"""``jiahe areas import FILE.csv`` run as a real process against the test database: any row
order, UTF-8 with or without BOM, idempotent, all rows or none, every bad line reported."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models.areas import Area

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("engine")


async def run_import(path: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "areas", "import", str(path)],
        env=dict(os.environ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


async def stored(db) -> dict[str, Area]:
    db.expire_all()
    rows = {a.code: a for a in (await db.execute(select(Area))).scalars()}
    await db.commit()
    return rows


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "areas.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


CHILDREN_FIRST = """code,name
430122100201,团头湖村
430122100202,柏叶村
430122101201,格塘村
430122100000,乔口镇
430122101000,靖港镇
430122000000,望城区
"""


async def test_children_before_parents_import(tmp_path, db):
    r = await run_import(write(tmp_path, CHILDREN_FIRST))
    assert r.returncode == 0, r.stderr
    assert "6 created" in r.stdout
    rows = await stored(db)
    assert set(rows) == {
        "430122000000",
        "430122100000",
        "430122101000",
        "430122100201",
        "430122100202",
        "430122101201",
    }
    county = rows["430122000000"]
    assert (county.level, county.parent_code, county.county_code) == ("county", None, "430122")
    town = rows["430122101000"]
    assert (town.level, town.parent_code, town.township_code) == ("township", "430122000000", "430122101")
    village = rows["430122101201"]
    assert (village.level, village.parent_code, village.village_code) == (
        "village",
        "430122101000",
        "430122101201",
    )
    assert rows["430122100202"].parent_code == "430122100000"


async def test_parents_may_already_be_stored(tmp_path, db):
    assert (await run_import(write(tmp_path, CHILDREN_FIRST))).returncode == 0
    r = await run_import(write(tmp_path, "code,name\n430122101203,新桥村\n", name="more.csv"))
    assert r.returncode == 0, r.stderr
    assert (await stored(db))["430122101203"].parent_code == "430122101000"


async def test_utf8_with_bom_and_crlf(tmp_path, db):
    text = CHILDREN_FIRST.replace("\n", "\r\n")
    r = await run_import(write(tmp_path, text, encoding="utf-8-sig"))
    assert r.returncode == 0, r.stderr
    rows = await stored(db)
    assert rows["430122000000"].name == "望城区"
    assert rows["430122100201"].name == "团头湖村"
    assert rows["430122101000"].name == "靖港镇"
    assert all("\ufeff" not in a.code and "\ufeff" not in a.name for a in rows.values())


async def test_same_file_twice_is_idempotent(tmp_path, db):
    path = write(tmp_path, CHILDREN_FIRST)
    first = await run_import(path)
    assert first.returncode == 0, first.stderr
    before = await stored(db)
    second = await run_import(path)
    assert second.returncode == 0, second.stderr
    assert "0 created" in second.stdout
    assert "6 unchanged" in second.stdout
    after = await stored(db)
    assert set(after) == set(before)
    assert {c: a.name for c, a in after.items()} == {c: a.name for c, a in before.items()}


async def test_two_bad_lines_are_both_reported_and_nothing_is_imported(tmp_path, db):
    text = """code,name
430122000000,望城区
4301221002AB,坏码村
430122100000,乔口镇
430122109201,孤村
430122100201,团头湖村
"""
    r = await run_import(write(tmp_path, text))
    assert r.returncode != 0
    assert "line 3" in r.stderr
    assert "line 5" in r.stderr
    assert "Traceback" not in r.stderr
    assert await stored(db) == {}


async def test_bad_line_and_missing_parent_against_stored_rows(tmp_path, db):
    assert (await run_import(write(tmp_path, CHILDREN_FIRST))).returncode == 0
    text = "code,name\n430122100203,田心坪村\n430122102201,静慎村\n43012210,短码\n"
    r = await run_import(write(tmp_path, text, name="bad.csv"))
    assert r.returncode != 0
    assert "line 3" in r.stderr
    assert "line 4" in r.stderr
    assert "line 2" not in r.stderr
    rows = await stored(db)
    assert "430122100203" not in rows
    assert len(rows) == 6


@pytest.mark.parametrize(
    "header",
    ["id,title", "code", "name,code", "code,name,level", ""],
)
async def test_wrong_header_is_refused(tmp_path, db, header):
    r = await run_import(write(tmp_path, f"{header}\n430122000000,望城区\n"))
    assert r.returncode != 0
    assert "header" in r.stderr
    assert "Traceback" not in r.stderr
    assert await stored(db) == {}


async def test_not_utf8_is_refused_cleanly(tmp_path, db):
    r = await run_import(write(tmp_path, CHILDREN_FIRST, encoding="gbk"))
    assert r.returncode != 0
    assert "UTF-8" in r.stderr
    assert "Traceback" not in r.stderr
    assert await stored(db) == {}


async def test_repeated_code_and_impossible_codes_are_refused(tmp_path, db):
    text = """code,name
430122000000,望城区
430122000000,望城县
430122000201,无镇之村
４３０１２２１０００００,全角镇
"""
    r = await run_import(write(tmp_path, text))
    assert r.returncode != 0
    for line in ("line 3", "line 4", "line 5"):
        assert line in r.stderr
    assert await stored(db) == {}


async def test_rename_is_reported(tmp_path, db):
    assert (await run_import(write(tmp_path, CHILDREN_FIRST))).returncode == 0
    r = await run_import(write(tmp_path, CHILDREN_FIRST.replace("望城区", "望城县"), name="renamed.csv"))
    assert r.returncode == 0, r.stderr
    assert "0 created, 1 renamed, 5 unchanged" in r.stdout
    assert (await stored(db))["430122000000"].name == "望城县"
