"""County figures for dashboards: aggregates only, never a personal record."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core import clock
from app.core.csvout import csv_text
from app.core.errors import error_responses
from app.core.messages import CONTENT_LANGUAGE, MESSAGES, Ref, column, current_language, text
from app.deps import Caller, SessionDep
from app.models.formats import Day
from app.services import indicators as svc

router = APIRouter(prefix="/api/v1", tags=["indicators"])

AreaQ = Annotated[str | None, Query(pattern=r"^[0-9]{12}$", description="default: your area")]
FromQ = Annotated[Day | None, Query(alias="from", description="default: 1 January of this year")]
ToQ = Annotated[Day | None, Query(description="default: today; not before `from` (422)")]
CACHE = "private, max-age=60"
CLAIM_COLUMNS = ("new", "continuing", "exited", "total", "amount", "in_payment", "in_payment_amount")
FIGURES_DESCRIPTION = (
    "Dates are China Standard Time (the service's business zone). "
    "`sex_ratio_at_birth` (boys per 100 girls) is null below "
    f"{svc.MIN_BIRTHS_FOR_SEX_RATIO} births in the area and period. `claims` per programme: `total` "
    "persons paid within the period (`new`, `continuing` from the same period a year earlier, "
    "`exited`), `amount` paid within the period; `in_payment` persons with a claim `approved` or "
    "`posted` (not yet paid) for a year the period touches, `in_payment_amount` their approved amounts."
)

CSV_FIELDS: list[tuple[str, str]] = [
    ("area_code", "区划代码"),
    ("name", "名称"),
    ("population", "总人口"),
    ("households", "户数"),
    ("married_women_15_49", "已婚育龄妇女"),
    ("births.total", "出生"),
    ("births.first", "一孩"),
    ("births.second", "二孩"),
    ("births.third_plus", "三孩及以上"),
    ("births.boys", "男婴"),
    ("births.girls", "女婴"),
    ("sex_ratio_at_birth", "出生人口性别比"),
    ("deaths", "死亡"),
    ("natural_growth_rate_per_mille", "人口自然增长率(‰)"),
    ("migrants.inflow_open", "流入人口"),
    ("migrants.outflow_open", "流出人口"),
    ("migrants.inflow_new", "新增流入"),
    ("migrants.outflow_new", "新增流出"),
    ("migrants.inflow_women_15_49", "流入育龄妇女"),
    ("checkups.due", "应查"),
    ("checkups.done", "已查"),
    ("checkups.rate", "到位率(%)"),
    ("visits", "入户走访"),
    ("data_quality_open", "数据质量问题"),
]


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    today = clock.today()
    return start or date(today.year, 1, 1), end or today


async def _cached(
    request: Request, response: Response, session: SessionDep, key: str, area: svc.AreaQuery
) -> tuple[str, bool]:
    tag = svc.etag(key, await svc.data_version(session, area.code))
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = CACHE
    return tag, request.headers.get("if-none-match") == tag


def _not_modified(tag: str) -> Response:
    return Response(status_code=304, headers={"ETag": tag, "Cache-Control": CACHE})


@router.get(
    "/indicators",
    responses={304: {"description": "Not modified"}, **error_responses(401, 403, 404, 422)},
    description=FIGURES_DESCRIPTION,
)
async def indicators(
    request: Request,
    response: Response,
    session: SessionDep,
    caller: Caller,
    area_code: AreaQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    breakdown: bool = False,
) -> Any:
    """The figures of an area for a period; ``breakdown=true`` adds each child area."""
    start, end = _period(from_, to)
    aq = svc.area_query(caller, area_code)
    tag, fresh = await _cached(
        request, response, session, f"ind|{caller.prefix}|{area_code}|{start}|{end}|{breakdown}", aq
    )
    if fresh:
        return _not_modified(tag)
    return await svc.indicators(
        session, caller, area_code=area_code, start=start, end=end, breakdown=breakdown
    )


@router.get(
    "/indicators/series",
    responses={304: {"description": "Not modified"}, **error_responses(401, 403, 404, 422)},
    description=(
        "Monthly values of one metric (months without events are 0; months are China Standard Time). "
        "`checkup_rate`: each month's checkup rate as the figures count it for that month's days "
        "(per cent, null when nothing was due); `beneficiaries`: persons paid in the month."
    ),
)
async def series(
    request: Request,
    response: Response,
    session: SessionDep,
    caller: Caller,
    metric: Annotated[
        str,
        # an enum in the document; the server's own check answers 422 ``invalid_metric``
        Query(
            description=", ".join(svc.SERIES_METRICS), json_schema_extra={"enum": list(svc.SERIES_METRICS)}
        ),
    ],
    area_code: AreaQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    granularity: Annotated[str, Query(pattern="^month$")] = "month",
) -> Any:
    """Monthly values of one metric (months without events are 0)."""
    del granularity
    start, end = _period(from_, to)
    aq = svc.area_query(caller, area_code)
    tag, fresh = await _cached(
        request, response, session, f"ser|{caller.prefix}|{area_code}|{metric}|{start}|{end}", aq
    )
    if fresh:
        return _not_modified(tag)
    return await svc.series(session, caller, area_code=area_code, metric=metric, start=start, end=end)


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else value


@router.get(
    "/indicators.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}},
        304: {"description": "Not modified"},
        **error_responses(401, 403, 404, 422),
    },
)
async def indicators_csv(
    request: Request,
    response: Response,
    session: SessionDep,
    caller: Caller,
    area_code: AreaQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    breakdown: bool = False,
    lang: Annotated[str | None, Query(pattern="^(en|zh)$")] = None,
) -> Response:
    """The figures as CSV (UTF-8 with BOM, opens in Excel). Headers in the language of
    ``Accept-Language`` (Chinese by default); ``lang=zh|en`` overrides it."""
    language = lang or current_language()
    start, end = _period(from_, to)
    aq = svc.area_query(caller, area_code)
    tag, fresh = await _cached(
        request,
        response,
        session,
        f"csv|{caller.prefix}|{area_code}|{start}|{end}|{breakdown}|{language}",
        aq,
    )
    if fresh:
        return _not_modified(tag)
    data = await svc.indicators(
        session, caller, area_code=area_code, start=start, end=end, breakdown=breakdown
    )
    body, filename = figures_csv(data, language)
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "ETag": tag,
            "Cache-Control": CACHE,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Language": CONTENT_LANGUAGE[language],
        },
    )


def figures_csv(data: dict[str, Any], language: str) -> tuple[str, str]:
    """The CSV document (and its file name) of an ``svc.indicators`` answer: the area, then each
    child area; the workbench's 统计 page downloads the same document."""
    rows = [data, *data.get("children", [])]
    programmes = sorted({p for r in rows for p in r["claims"]})
    header = [column(en, language, zh if language == "zh" else en) for en, zh in CSV_FIELDS]
    for p in programmes:
        name = Ref(f"programme.{p}") if f"programme.{p}" in MESSAGES else p
        header += [text(f"csv.claims.{k}", language, code=p, programme=name) for k in CLAIM_COLUMNS]
    lines: list[list[Any]] = []
    for r in rows:
        line = [_get(r, en) for en, _zh in CSV_FIELDS]
        for p in programmes:
            v = r["claims"].get(p, {})
            line += [v.get(k, "0.00" if k.endswith("amount") else 0) for k in CLAIM_COLUMNS]
        lines.append(line)
    return csv_text(
        header, lines, language
    ), f"indicators_{data['area_code']}_{data['from']}_{data['to']}.csv"
