"""统计: the figures of the caller's area (or an area below it) for a period.

The same service as ``/api/v1/indicators`` (``app.services.indicators``), with the same scope: an
area outside the caller's is 404, as in the API. The page shows the headline figures as cards,
each child area as a table row (a click goes down one level), the monthly series as charts with
their numbers in a table under each chart (readable without scripts, printable), and the CSV the
API gives (``figures_csv``, the API's own document) for download.

Why ECharts (vendored under /web/static/vendor/echarts, the "common" build) rather than SVG drawn
on the server: it is what Chinese county and provincial dashboards use, so the charts look and
behave as the staff expect (tooltips, legend toggles, zoom-free axis labels in Chinese), it needs
no build step and no CDN (the file is served from this site, so the CSP keeps ``script-src
'self'``), and the page stays server-rendered: the option travels as JSON in a non-executed
``<script type="application/json">`` and ``app.js`` draws it (no inline script). The table under
each chart carries the same numbers for printing, screen readers and browsers without scripts.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.core import clock
from app.core.messages import CONTENT_LANGUAGE
from app.deps import SessionDep
from app.models.formats import Day
from app.routers.indicators import figures_csv
from app.services import indicators as svc
from app.web.deps import WebCaller
from app.web.render import PAGE_HEADERS, PROGRAMME_LABELS, page

router = APIRouter(prefix="/web", include_in_schema=False)

AreaQ = Annotated[str | None, Query(pattern=r"^[0-9]{12}$")]
FromQ = Annotated[Day | None, Query(alias="from")]
ToQ = Annotated[Day | None, Query()]

# Series metrics by chart: (chart id, title, unit, [(metric, label)]).
CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("chart-vital", "出生与死亡", "人", (("births", "出生"), ("deaths", "死亡"))),
    ("chart-migration", "新增流入与流出", "人", (("inflow_new", "新增流入"), ("outflow_new", "新增流出"))),
    ("chart-work", "入户走访与三查", "次", (("visits", "入户走访"), ("checkups_done", "已查"))),
    ("chart-money", "奖扶发放金额", "元", (("claims_paid_amount", "发放金额"),)),
)


def period(start: date | None, end: date | None) -> tuple[date, date]:
    """The API's default period: 1 January of this year to today."""
    today = clock.today()
    return start or date(today.year, 1, 1), end or today


def _fmt(value: Any, suffix: str = "") -> str:
    return "—" if value is None else f"{value}{suffix}"


def headline(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The cards: (key, label, value as the API gives it, shown text, hint)."""
    claims = data["claims"].values()
    paid_persons = sum(int(v["total"]) for v in claims)
    paid_fen = sum(int(v["amount"].replace(".", "")) for v in claims)
    paid = f"{paid_fen // 100}.{paid_fen % 100:02d}"
    births, migrants, checkups = data["births"], data["migrants"], data["checkups"]
    rows: list[tuple[str, str, Any, str, str]] = [
        ("population", "总人口", data["population"], str(data["population"]), f"截至 {data['to']}"),
        ("households", "户数", data["households"], str(data["households"]), ""),
        ("married_women_15_49", "15–49岁已婚妇女", data["married_women_15_49"], "", ""),
        ("births", "出生", births["total"], "", f"男 {births['boys']} · 女 {births['girls']}"),
        (
            "sex_ratio_at_birth",
            "出生性别比",
            data["sex_ratio_at_birth"],
            _fmt(data["sex_ratio_at_birth"]),
            f"女=100；出生不足{svc.MIN_BIRTHS_FOR_SEX_RATIO}人不计算",
        ),
        ("deaths", "死亡", data["deaths"], "", ""),
        (
            "natural_growth_rate_per_mille",
            "自然增长率",
            data["natural_growth_rate_per_mille"],
            _fmt(data["natural_growth_rate_per_mille"], "‰"),
            "",
        ),
        ("inflow_open", "流入人口", migrants["inflow_open"], "", f"期内新增 {migrants['inflow_new']}"),
        ("outflow_open", "流出人口", migrants["outflow_open"], "", f"期内新增 {migrants['outflow_new']}"),
        (
            "checkup_rate",
            "三查率",
            checkups["rate"],
            _fmt(checkups["rate"], "%"),
            f"应查 {checkups['due']} · 已查 {checkups['done']}",
        ),
        ("beneficiaries", "奖扶人数", paid_persons, "", "期内已发放"),
        ("paid_amount", "奖扶金额", paid, f"{paid_fen / 100:,.2f}", "元，期内已发放"),
        ("visits", "走访", data["visits"], "", "期内入户走访"),
        ("data_quality_open", "数据质量问题", data["data_quality_open"], "", "当前未处理"),
    ]
    return [
        {"key": k, "label": lab, "value": v, "text": shown or str(v), "hint": hint}
        for k, lab, v, shown, hint in rows
    ]


def chart_json(option: dict[str, Any]) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(option, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def charts(
    session: SessionDep, caller: WebCaller, area_code: str, start: date, end: date
) -> list[dict[str, Any]]:
    out = []
    for chart_id, title, unit, metrics in CHARTS:
        months: list[str] = []
        series = []
        for metric, name in metrics:
            body = await svc.series(session, caller, area_code=area_code, metric=metric, start=start, end=end)
            months = [p["month"] for p in body["points"]]
            series.append({"metric": metric, "name": name, "values": [p["value"] for p in body["points"]]})
        option = {
            "title": {"text": title, "left": "center", "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "legend": {"bottom": 0},
            "grid": {"left": 48, "right": 16, "top": 40, "bottom": 48},
            "xAxis": {"type": "category", "data": months},
            "yAxis": {"type": "value", "name": unit, "minInterval": 1 if unit != "元" else 0},
            "series": [
                {
                    "name": s["name"],
                    "type": "bar" if unit == "元" else "line",
                    "data": [float(v) if unit == "元" else v for v in s["values"]],
                }
                for s in series
            ],
        }
        rows = [{"month": m, "values": [s["values"][i] for s in series]} for i, m in enumerate(months)]
        out.append(
            {
                "id": chart_id,
                "title": title,
                "unit": unit,
                "names": [s["name"] for s in series],
                "rows": rows,
                "json": chart_json(option),
            }
        )
    return out


def _query(area_code: str, start: date, end: date) -> str:
    return urlencode({"area_code": area_code, "from": start.isoformat(), "to": end.isoformat()})


@router.get("/figures")
async def figures(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    area_code: AreaQ = None,
    from_: FromQ = None,
    to: ToQ = None,
) -> Response:
    start, end = period(from_, to)
    data = await svc.indicators(session, caller, area_code=area_code, start=start, end=end, breakdown=True)
    code = data["area_code"]
    home = svc.area_query(caller, None).code
    # Up one level, while still inside the caller's scope.
    parent = None
    if code != home:
        aq = svc.area_query(caller, code)
        parent = code[:6] + "000000" if len(aq.prefix) == 9 else code[:9] + "000"
    today = clock.today()
    presets = [
        ("本年", date(today.year, 1, 1), today),
        ("上年", date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
        ("本月", today.replace(day=1), today),
    ]
    return page(
        request,
        "figures/index.html",
        {
            "data": data,
            "cards": headline(data),
            "charts": await charts(session, caller, code, start, end),
            "programmes": [(PROGRAMME_LABELS.get(p, p), v) for p, v in data["claims"].items()],
            "start": start,
            "end": end,
            "home": home,
            "parent": parent,
            "presets": [(name, _query(code, a, b)) for name, a, b in presets],
            "query": _query,
            "csv_url": "/web/figures.csv?" + _query(code, start, end),
        },
        active="figures",
    )


@router.get("/figures.csv")
async def figures_csv_download(
    session: SessionDep,
    caller: WebCaller,
    area_code: AreaQ = None,
    from_: FromQ = None,
    to: ToQ = None,
) -> Response:
    """The API's ``/indicators.csv?breakdown=true`` document, in Chinese."""
    start, end = period(from_, to)
    data = await svc.indicators(session, caller, area_code=area_code, start=start, end=end, breakdown=True)
    body, filename = figures_csv(data, "zh")
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Language": CONTENT_LANGUAGE["zh"],
        },
    )
