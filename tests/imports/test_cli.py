"""``jiahe import KIND FILE`` run as a real process against the test database: the same report
as the API, nothing written without ``--commit``, the valid rows with it, nothing new the second
time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from app.models.households import Person
from tests.factories import id_number
from tests.imports.test_register import V1, V_OTHER_TS, count, row, xlsx

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("engine")


async def jiahe_import(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "import", *args],
        env=dict(os.environ, COLUMNS="200"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


async def test_the_command_line_reports_then_commits_once(tmp_path, db, areas) -> None:
    good = id_number(date(1980, 4, 5), "female")
    bad = id_number(date(1981, 6, 7), "male")
    bad = bad[:-1] + ("1" if bad[-1] != "1" else "2")
    path = tmp_path / "register.xlsx"
    path.write_bytes(
        xlsx(
            [
                row("H1", V1, "孙丽", good, sex="女", born="1980-04-05"),
                row("H2", V_OTHER_TS, "周强", bad, sex="男", born="19810607"),
            ]
        )
    )

    dry = await jiahe_import("register", str(path), "--county", "430122")
    assert dry.returncode == 0, dry.stderr
    assert "2 rows, 1 valid, 1 errors" in dry.stdout and "row 3 身份证号" in dry.stdout
    assert "dry run: nothing written" in dry.stdout
    assert good not in dry.stdout + dry.stderr and bad not in dry.stdout + dry.stderr  # no ID in clear
    assert await count(db, Person) == 0

    done = await jiahe_import("register", str(path), "--county", "430122", "--commit")
    assert done.returncode == 0, done.stderr
    assert "committed: 2 created" in done.stdout  # the household and its person
    assert await count(db, Person) == 1

    again = await jiahe_import("register", str(path), "--county", "430122", "--commit")
    assert again.returncode == 0, again.stderr
    assert "committed: 0 created" in again.stdout
    assert await count(db, Person) == 1

    refused = await jiahe_import("register", str(path))
    assert refused.returncode != 0 and "--county" in refused.stdout + refused.stderr
