"""The one message catalogue: every text a person reads, in Chinese (the default) and English.

Chosen: a plain dict module, not Babel/gettext. The service speaks two languages, has a few
hundred short messages and no translators' toolchain; a dict keyed by message id with
``{"zh": ..., "en": ...}`` and ``str.format`` parameters is read and reviewed in one place,
needs no compile step (``.mo`` files) and no extra dependency, and a test can walk it (both
languages present, the same parameters in both).

**How a text finds its translation.** The code writes English, as it always has: the English
form is the message's source text (gettext's convention, with an id beside it here), so the
hundreds of ``raise NotFound("No person with this id")`` sites need no change and the
parallel edits of the service modules merge cleanly. Translation happens at render time
(``translate``): an exact English text is looked up; a parametrised one (an f-string such as
``f"The task is {status}, not open"``) is matched against the English templates and its
parameters are read back and put into the other language's template; parameters that are
catalogue texts themselves ("the mother") are translated too. Pydantic's own validation
messages are matched the same way against pydantic-core's templates. A text that matches
nothing is served as written (English). ``msg(id, **params)`` builds the English text from an
id, for code that prefers naming the message; ``text(id, **params)`` renders one in the
request's language (task titles, CSV headers).

**Which language.** ``Accept-Language`` is read once per request by the outermost middleware
(``negotiate``; ``zh-CN``, ``zh``, anything unknown or absent → Chinese; ``en``, ``en-US`` →
English; q-values honoured) into a context variable; every rendering reads it. Codes, enum
values and field names never change with the language.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from contextvars import ContextVar, Token
from functools import lru_cache

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
CONTENT_LANGUAGE = {"zh": "zh-CN", "en": "en"}

_language: ContextVar[str] = ContextVar("language", default=DEFAULT)


def current_language() -> str:
    return _language.get()


def set_language(lang: str) -> Token[str]:
    return _language.set(lang if lang in LANGUAGES else DEFAULT)


def reset_language(token: Token[str]) -> None:
    _language.reset(token)


def negotiate(header: str | None) -> str:
    """The language of an ``Accept-Language`` header: the highest-q range we speak (ties: the
    first written); ``*``, nothing we speak or no header → Chinese."""
    if not header:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for pos, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if q <= 0 or not primary:
            continue
        ranked.append((-q, pos, primary))
    for _q, _pos, primary in sorted(ranked):
        if primary in LANGUAGES:
            return primary
        if primary == "*":
            return DEFAULT
    return DEFAULT


# --- the catalogue ----------------------------------------------------------------------------
# id → {"zh", "en"}. Ids are dotted by area: title.* (problem titles, by code), err.* (problem
# details), field.* (errors[].message), reason.* (claim check reasons), dq.* (data-quality
# details), task.* (task titles), csv.* (CSV column headers), v.* (pydantic's messages).

MESSAGES: dict[str, dict[str, str]] = {
    # problem titles
    "title.bad_request": {"zh": "请求有误", "en": "Bad request"},
    "title.unauthorized": {"zh": "需要登录", "en": "Authentication required"},
    "title.invalid_credentials": {"zh": "账号或密码错误", "en": "Invalid credentials"},
    "title.forbidden": {"zh": "无权操作", "en": "Forbidden"},
    "title.out_of_scope": {"zh": "超出您的辖区", "en": "Outside your area"},
    "title.not_found": {"zh": "未找到", "en": "Not found"},
    "title.conflict": {"zh": "冲突", "en": "Conflict"},
    "title.id_conflict": {"zh": "该 id 已用于不同的内容", "en": "Id already used with different content"},
    "title.invalid_transition": {"zh": "不允许此操作", "en": "Transition not allowed"},
    "title.version_conflict": {"zh": "记录在您读取后已被修改", "en": "Record changed since you read it"},
    "title.precondition_required": {"zh": "需要 If-Match 请求头", "en": "If-Match header required"},
    "title.validation_failed": {"zh": "校验未通过", "en": "Validation failed"},
    "title.unknown_parameter": {"zh": "未知的查询参数", "en": "Unknown query parameter"},
    "title.too_many_requests": {"zh": "请求过于频繁", "en": "Too many requests"},
    "title.unavailable": {"zh": "服务暂不可用", "en": "Service unavailable"},
    "title.method_not_allowed": {"zh": "不支持该请求方法", "en": "Method not allowed"},
    "title.not_acceptable": {"zh": "无法提供可接受的格式", "en": "Not acceptable"},
    "title.payload_too_large": {"zh": "请求体过大", "en": "Payload too large"},
    "title.unsupported_media_type": {"zh": "不支持的内容类型", "en": "Unsupported media type"},
    "title.http_error": {"zh": "HTTP 错误", "en": "HTTP error"},
    "title.internal_error": {"zh": "服务器内部错误", "en": "Internal server error"},
    "title.request_header_too_large": {"zh": "请求头过大", "en": "Request header fields too large"},
    # problem details: generic
    "err.not_found_route": {"zh": "未找到", "en": "Not Found"},
    "err.method_not_allowed": {"zh": "不支持该请求方法", "en": "Method Not Allowed"},
    "err.invalid_fields": {"zh": "请求中有无效字段", "en": "The request has invalid fields"},
    # the workbench (app/web/)
    "err.web_csrf": {
        "zh": "表单已过期或并非来自本站，请刷新页面后重试",
        "en": "The form has expired or did not come from this site; reload the page",
    },
    "err.unexpected": {
        "zh": "发生意外错误；报告问题时请提供请求编号",
        "en": "Unexpected error; quote the request id when reporting it",
    },
    "err.db_busy": {
        "zh": "数据库连接全部繁忙，请稍后重试",
        "en": "All database connections are busy; retry shortly",
    },
    "err.db_no_connections": {
        "zh": "数据库没有空闲连接，请稍后重试",
        "en": "The database has no free connections; retry shortly",
    },
    "err.db_unavailable": {
        "zh": "数据库暂不可用，请稍后重试",
        "en": "The database is unavailable; retry shortly",
    },
    "err.db_unreachable": {"zh": "无法连接数据库", "en": "Database unreachable"},
    "err.schema_outdated": {"zh": "数据库结构不是最新版本", "en": "Database schema is not current"},
    "err.metrics_closed": {"zh": "此处不公开监控指标", "en": "Metrics are not public here"},
    "err.body_too_large": {
        "zh": "请求体超过 {limit} 字节，请分批发送",
        "en": "The request body is over {limit} bytes; send smaller batches",
    },
    "err.headers_too_large": {
        "zh": "请求头超过 {limit} 字节",
        "en": "Request headers are over {limit} bytes",
    },
    "err.slow_down": {"zh": "请求过于频繁，请放慢速度", "en": "Too many requests; slow down"},
    "err.control_chars": {
        "zh": "请求中的文本含有 NUL 或控制字符",
        "en": "The request has text with NUL or control characters",
    },
    "err.cursor_invalid": {
        "zh": "游标对此列表无效，请不带游标重新开始",
        "en": "The cursor is not valid for this list; start again without one",
    },
    "err.too_many_ops": {
        "zh": "每次推送最多 {n} 个操作，请分批",
        "en": "At most {n} ops per push; split the batch",
    },
    # auth
    "err.token_required": {"zh": "需要 Bearer 访问令牌", "en": "A bearer access token is required"},
    "err.token_invalid_expired": {"zh": "令牌无效或已过期", "en": "Invalid or expired token"},
    "err.token_invalid": {"zh": "令牌无效", "en": "Invalid token"},
    "err.login_ended": {"zh": "此次登录已结束", "en": "This login has ended"},
    "err.account_disabled": {"zh": "该账号已停用", "en": "This account is disabled"},
    "err.refresh_invalid": {"zh": "刷新令牌无效", "en": "Refresh token is not valid"},
    "err.refresh_reused": {
        "zh": "刷新令牌已被使用过；此次登录已结束",
        "en": "Refresh token was already used; this login has been ended",
    },
    "err.wrong_password": {"zh": "用户名或密码错误", "en": "Wrong username or password"},
    "err.wrong_secret": {"zh": "客户端 id 或密钥错误", "en": "Wrong client id or secret"},
    "err.too_many_logins": {
        "zh": "登录失败次数过多，请稍后再试",
        "en": "Too many failed logins; try again later",
    },
    "err.grant_password": {"zh": "需要提供用户名和密码", "en": "username and password are required"},
    "err.grant_client": {
        "zh": "需要提供 client_id 和 client_secret",
        "en": "client_id and client_secret are required",
    },
    "err.grant_type": {
        "zh": "grant_type 必须是 password 或 client_credentials",
        "en": "grant_type must be password or client_credentials",
    },
    # roles, scope, versions
    "err.role_forbidden": {"zh": "您的角色无权进行此操作", "en": "Your role may not do this"},
    "err.village_out_of_scope": {"zh": "该村不在您的辖区内", "en": "That village is outside your area"},
    "err.area_out_of_scope": {"zh": "该区域不在您的辖区内", "en": "That area is outside your area"},
    "err.area_out_of_county": {"zh": "该区域不在您的县内", "en": "That area is outside your county"},
    "err.no_area_in_scope": {"zh": "您的辖区内没有该区域", "en": "No such area in your scope"},
    "err.no_record": {"zh": "没有该记录", "en": "No such record"},
    "err.no_model_with_id": {"zh": "没有此 id 的{model}", "en": "No {model} with this id"},
    "err.if_match_required": {
        "zh": "请用 If-Match 发送您读取到的版本（其 ETag）",
        "en": "Send If-Match with the version you read (its ETag)",
    },
    "err.if_match_format": {
        "zh": 'If-Match 必须是版本 ETag，如 "3"',
        "en": 'If-Match must be a version ETag like "3"',
    },
    "err.version_stale": {
        "zh": "记录当前为第 {current} 版，您发送的是第 {sent} 版",
        "en": "The record is at version {current}, you sent {sent}",
    },
    "err.id_used": {"zh": "此 id 已被另一条记录使用", "en": "This id is already used by a different record"},
    # users and areas
    "err.role_area": {
        "zh": "{role} 用户应属于 {levels} 级区域",
        "en": "A {role} user belongs to a {levels} area",
    },
    "err.username_taken": {"zh": "该用户名已被占用", "en": "That username is taken"},
    "err.self_change": {
        "zh": "您不能停用自己或更改自己的角色",
        "en": "You cannot disable or re-role yourself",
    },
    "err.unknown_area": {"zh": "未知的区划代码", "en": "Unknown area code"},
    "err.parent_missing": {"zh": "上级区域不存在", "en": "The parent area does not exist"},
    "err.area_exists": {"zh": "该区划代码已存在", "en": "An area with this code exists"},
    "err.no_area_code": {"zh": "没有此代码的区域", "en": "No area with this code"},
    "err.file_not_utf8": {
        "zh": "文件不是 UTF-8 文本，请另存为“CSV UTF-8”",
        "en": "The file is not UTF-8 text; save it as CSV UTF-8",
    },
    "err.file_header": {
        "zh": "第一行必须是表头 code,name",
        "en": "The first line must be the header code,name",
    },
    "err.file_bad_rows": {
        "zh": "文件中有错误行，未导入任何内容",
        "en": "The file has bad rows; nothing was imported",
    },
    "err.one_of": {"zh": "须为以下之一：{values}", "en": "one of: {values}"},
    # query parameters (app/core/params.py)
    "err.unknown_parameters": {"zh": "未知的查询参数：{names}", "en": "Unknown query parameter: {names}"},
    "err.unknown_parameter_takes": {
        "zh": "未知的查询参数；此接口接受：{names}",
        "en": "unknown query parameter; this route takes {names}",
    },
    "err.unknown_parameter_takes_none": {
        "zh": "未知的查询参数；此接口不接受查询参数",
        "en": "unknown query parameter; this route takes no query parameters",
    },
    "err.parameter_repeated": {
        "zh": "只接受一个值的查询参数被给出了多次",
        "en": "A query parameter that takes one value was given more than once",
    },
    "err.parameter_given_n_times": {
        "zh": "给出了 {n} 次；此参数只接受一个值",
        "en": "given {n} times; this parameter takes one value",
    },
    "err.not_less_than_age_min": {
        "zh": "不得小于 age_min（{age_min}）",
        "en": "must not be less than age_min ({age_min})",
    },
    # rosters out
    "err.full_id_numbers_county_only": {
        "zh": "只有县级可以导出完整身份证号",
        "en": "Only the county may export full ID numbers",
    },
    "err.export_too_large": {
        "zh": "导出将包含 {total} 行，超过上限 {cap} 行；请按乡镇或村筛选",
        "en": "The export would hold {total} rows, more than {cap}; filter by township or village",
    },
    # register
    "err.op_id_is_the_record": {
        "zh": "须为本操作的 id（所操作的记录），或不填",
        "en": "must be the op's id (the record acted on), or left out",
    },
    "err.true_or_false": {"zh": "须为 true 或 false", "en": "must be true or false"},
    "err.fault_entity": {"zh": "{kind} 类问题针对的是 {entity}", "en": "A {kind} fault is about a {entity}"},
    "err.must_be_entity_for_kind": {"zh": "{kind} 类问题须为 {entity}", "en": "must be {entity} for {kind}"},
    "err.merge_claims_past_draft": {
        "zh": "两条记录都有已提交的 {programme} {year} 年度待遇申领，请先处理其中一条再合并",
        "en": "Both records hold a claim past draft for {programme} {year}; settle one before merging",
    },
    "err.merge_once_per_person": {
        "zh": "两条记录都有每人只能有一条的记录（如已登记的死亡），请先处理其中一条再合并",
        "en": "Both records hold a record that exists once per person (e.g. a recorded death); "
        "settle one before merging",
    },
    "err.no_open_fault": {
        "zh": "该记录没有此类未处理的问题",
        "en": "No open fault of this kind for this record",
    },
    "err.only_for_duplicate": {
        "zh": "仅适用于疑似重复（likely_duplicate）",
        "en": "only for likely_duplicate",
    },
    "err.other_id_only_for_duplicate": {
        "zh": "other_id 仅适用于疑似重复（likely_duplicate）",
        "en": "other_id is for likely_duplicate only",
    },
    "err.person_exists": {
        "zh": "此身份证号的人员已登记",
        "en": "A person with this ID number is already registered",
    },
    "err.person_exists_elsewhere": {
        "zh": "此身份证号的人员已在其他地区登记",
        "en": "A person with this ID number is registered in another area",
    },
    "err.birth_sex_required": {
        "zh": "没有身份证号时必须填写出生日期和性别",
        "en": "birth_date and sex are required without an ID number",
    },
    "err.person_merged": {"zh": "此记录已合并到另一人", "en": "This record was merged into another person"},
    "err.mother_merged": {
        "zh": "母亲的记录已合并到另一人",
        "en": "The mother's record was merged into another person",
    },
    "err.already_member": {"zh": "此人已是该户成员", "en": "The person already belongs to that household"},
    "err.one_merged": {"zh": "其中一条记录已被合并", "en": "One of the records is already merged"},
    "err.different_id_numbers": {
        "zh": "两条记录的身份证号不同",
        "en": "The two records have different ID numbers",
    },
    "err.merge_conflict": {
        "zh": "两条记录持有同类记录（同一项目同一年度的申领，或同一轮次的预约），请先处理其中一条再合并",
        "en": "Both records hold the same kind of record (a claim of one programme and year, or an "
        "appointment of one round); settle one before merging",
    },
    "err.person_deceased": {"zh": "此人已故", "en": "The person is deceased"},
    "err.person_deceased_visit": {
        "zh": "此人已故，不能记录对其的走访",
        "en": "The person is deceased; visits to them cannot be recorded",
    },
    "err.person_deceased_claim": {
        "zh": "此人已故，不能新建申领",
        "en": "The person is deceased; no new claims",
    },
    "err.already_deceased": {"zh": "此人已登记为死亡", "en": "This person is already recorded as deceased"},
    # sync
    "err.op_data_invalid": {"zh": "该操作的数据中有无效字段", "en": "The op's data has invalid fields"},
    "err.op_unsupported": {"zh": "不支持对 {entity} 的操作", "en": "Ops on {entity} are not supported"},
    "err.op_not_updatable": {"zh": "{entity} 记录不能修改", "en": "{entity} records cannot be updated"},
    "err.base_version": {
        "zh": "base_version 不是此记录的版本",
        "en": "base_version is not a version of this record",
    },
    "err.conflict_resolved": {"zh": "此冲突已处理", "en": "This conflict is already resolved"},
    "err.op_id_taken": {"zh": "此操作 id 已被他人使用", "en": "This op id was used by someone else"},
    "err.op_clash": {"zh": "该操作与已存数据冲突", "en": "The op clashes with stored data"},
    "err.op_in_flight": {"zh": "操作正在处理中", "en": "Op in flight"},
    # checkups
    "err.round_overlaps": {
        "zh": "本区域、包含本区域或本区域内的区域已有共享检查项目且时间窗重叠的轮次",
        "en": "A round of this area, of an area containing it or of an area inside it, sharing an "
        "item, overlaps that window",
    },
    "err.not_before_today": {"zh": "不得早于今天", "en": "must not be before today"},
    "err.within_round_window": {
        "zh": "须在轮次时间窗内（{opens_on} 至 {closes_on}）",
        "en": "must be within the round's window ({opens_on} to {closes_on})",
    },
    "err.declined_round_closed": {
        "zh": "她已拒检，且该轮次已于 {closes_on} 结束：拒检的预约只在轮次开放期间可补录结果",
        "en": "She declined and the round closed on {closes_on}: a declined appointment takes a "
        "result only while its round is open",
    },
    "err.appointment_not_cancellable": {
        "zh": "该预约状态为 {status}，不能取消",
        "en": "The appointment is {status}; it cannot be cancelled",
    },
    "err.no_round_in_area": {"zh": "您的辖区内没有该轮次", "en": "No such round in your area"},
    "err.round_closed": {"zh": "该轮次的时间窗已结束", "en": "The round's window has closed"},
    "err.no_round": {"zh": "没有此 id 的检查轮次", "en": "No checkup round with this id"},
    "err.not_round_items": {"zh": "不是本轮次的项目：{items}", "en": "Not items of this round: {items}"},
    "err.appointment_status": {
        "zh": "该预约状态为 {status}，只有待检（scheduled）的预约才能这样处理",
        "en": "The appointment is {status}; only a scheduled one takes this",
    },
    "err.result_id_conflict": {
        "zh": "此结果 id 已记录了不同的内容",
        "en": "This result id was recorded with different content",
    },
    "err.result_id_used": {
        "zh": "此结果 id 已被另一预约的结果使用",
        "en": "This result id is already used by the result of another appointment",
    },
    "err.consent_required": {
        "zh": "检查需要本人同意；如不同意请记录为拒检",
        "en": "A checkup needs the woman's consent; record a decline instead",
    },
    "err.one_item": {"zh": "请至少填写一个项目的结果", "en": "Give the result of at least one item"},
    "err.only_recorded": {"zh": "只能更正已记录的结果", "en": "Only a recorded result can be corrected"},
    "err.no_result": {"zh": "没有此 id 的检查结果", "en": "No checkup result with this id"},
    "err.record_checkup_instead": {
        "zh": "“三查到期”事项在记录该妇女的检查结果、拒检或免检后自动关闭",
        "en": "A checkup-due item closes when the woman's result, decline or exemption is recorded on "
        "her appointment",
    },
    "err.task_not_open": {"zh": "该任务状态为 {status}，不是待办", "en": "The task is {status}, not open"},
    # claims
    "err.no_programme": {"zh": "没有此代码的项目", "en": "No programme with this code"},
    "err.rules_own_county": {
        "zh": "您只能为本县添加规则版本",
        "en": "You add rule versions only for your own county",
    },
    "err.rule_version_exists": {
        "zh": "该项目在本县已有自此日期生效的版本",
        "en": "The programme already has a version for this county effective from this date",
    },
    "err.rule_params": {"zh": "规则参数无效", "en": "The rule parameters are not valid"},
    "err.no_rule_version": {
        "zh": "该项目在 {year} 年没有生效的规则版本",
        "en": "The programme has no rule version in force for {year}",
    },
    "err.payee_own": {
        "zh": "收款账户必须是受益人本人的账户",
        "en": "The payee must be the beneficiary's own account",
    },
    "err.claim_exists": {
        "zh": "此人在该项目该年度已有申领",
        "en": "This person already has a claim for this programme and year",
    },
    "err.no_claim": {"zh": "没有此 id 的申领", "en": "No claim with this id"},
    "err.claim_not_correctable": {
        "zh": "{status} 状态的申领不能更正；提交后请使用 change_payee",
        "en": "A {status} claim cannot be corrected; after submission use change_payee",
    },
    "err.role_may_not_claim": {
        "zh": "{role}用户不能{action}申领",
        "en": "A {role} user may not {action} claims",
    },
    "err.claim_transition": {
        "zh": "{status}状态的申领不能{action}",
        "en": "A {status} claim cannot {action}",
    },
    "err.separation_of_duties": {
        "zh": "您已办理过此申领的前一环节，此环节须由他人办理",
        "en": "You took an earlier step of this claim; another person must do this one",
    },
    "err.not_eligible": {"zh": "申领不符合规则", "en": "The claim does not meet the rules"},
    "err.notice_running": {
        "zh": "该申领公示至 {until}，请在此后发放",
        "en": "The claim is publicly posted until {until}; pay after that",
    },
    # migrants and partners
    "err.no_migrant": {"zh": "没有此 id 的流动人口记录", "en": "No migrant with this id"},
    "err.migrant_open": {
        "zh": "此人已有未关闭的 {direction} 记录",
        "en": "The person already has an open {direction} record",
    },
    "err.migrant_not_open": {
        "zh": "该记录状态为 {status}，不是未关闭",
        "en": "The record is {status}, not open",
    },
    "err.no_move_waiting": {
        "zh": "此记录没有待放行的迁移",
        "en": "This record has no move waiting for release",
    },
    "err.release_own_place": {
        "zh": "只有此人现居住地才能确认或拒绝此迁移",
        "en": "Only the person's current place may confirm or refuse this move",
    },
    "err.household_left": {
        "zh": "申请中的户已不在迁入村",
        "en": "The household named by the request is no longer in the receiving village",
    },
    "err.no_notification": {"zh": "没有此 id 的通知", "en": "No notification with this id"},
    "err.notification_decided": {
        "zh": "该通知状态为 {status}，已经处理过",
        "en": "The notification is {status}; it was decided already",
    },
    "err.notification_invalid": {"zh": "通知中有无效字段", "en": "The notification has invalid fields"},
    "err.idempotency_reused": {
        "zh": "此 Idempotency-Key 已用于不同的请求体",
        "en": "This Idempotency-Key was used with a different body",
    },
    "err.idempotency_required": {
        "zh": "请发送 Idempotency-Key 请求头（不超过 255 个字符）",
        "en": "Send an Idempotency-Key header (≤ 255 characters)",
    },
    "err.idempotency_in_flight": {
        "zh": "使用此 Idempotency-Key 的请求仍在处理中，请稍后重试",
        "en": "A request with this Idempotency-Key is still being processed; retry later",
    },
    # figures
    "err.area_level": {"zh": "指标按县、乡镇或村统计", "en": "Figures are per county, township or village"},
    "err.import_format": {"zh": "文件须为 .xlsx 或 .csv", "en": "The file must be .xlsx or .csv"},
    "err.import_csv_encoding": {
        "zh": "CSV 文件既不是 UTF-8 也不是 GB18030 编码",
        "en": "The CSV file is neither UTF-8 nor GB18030",
    },
    "err.import_not_xlsx": {
        "zh": "文件不是可读取的 .xlsx 工作簿",
        "en": "The file is not a readable .xlsx workbook",
    },
    "err.import_no_sheet": {"zh": "工作簿中没有工作表", "en": "The workbook has no sheet"},
    "err.import_empty": {"zh": "文件为空", "en": "The file is empty"},
    "err.import_missing_columns": {
        "zh": "缺少必需的列：{columns}",
        "en": "Required columns are missing: {columns}",
    },
    "err.import_too_many_rows": {"zh": "每个文件最多 {rows} 行", "en": "At most {rows} rows per file"},
    "err.import_kind_unavailable": {
        "zh": "暂不支持这种导入",
        "en": "This kind of import is not available yet",
    },
    "err.import_has_errors": {
        "zh": "文件中有错误行，未写入任何数据",
        "en": "The file has rows with errors; nothing was written",
    },
    "err.import_stale": {
        "zh": "第 {row} 行在试导入后已在登记库中变化，请重新校验文件",
        "en": "Row {row} changed in the register since the dry run; validate the file again",
    },
    "err.import_too_large": {"zh": "文件超过 {limit} 字节", "en": "The file is over {limit} bytes"},
    "err.no_import": {"zh": "没有这个导入记录", "en": "No import with this id"},
    "err.no_template": {"zh": "这种导入暂无模板", "en": "No template for this kind yet"},
    "err.period_order": {"zh": "from 不得晚于 to", "en": "from must not be after to"},
    "err.period_span": {"zh": "统计期最长 10 年", "en": "The period may span at most 10 years"},
    "err.metric": {"zh": "metric 必须是以下之一：{metrics}", "en": "metric must be one of {metrics}"},
    # errors[].message
    "field.no_such_area": {"zh": "没有该区域", "en": "no such area"},
    "field.parent_missing": {"zh": "上级区域 {code} 不存在", "en": "parent {code} missing"},
    "field.not_utf8": {"zh": "不是 UTF-8", "en": "not UTF-8"},
    "field.header": {"zh": "表头必须是 code,name", "en": "header must be code,name"},
    "field.two_columns": {"zh": "应为 2 列", "en": "expected 2 columns"},
    "field.name_length": {"zh": "名称须为 1–100 个字符", "en": "name must be 1-100 chars"},
    "field.name_control": {"zh": "名称含有控制字符", "en": "name has control characters"},
    "field.in_range": {"zh": "必须在 {lo} 至 {hi} 之间", "en": "must be from {lo} to {hi}"},
    "field.kind_in_range": {
        "zh": "必须是{what}，在 {lo} 至 {hi} 之间",
        "en": "must be {what} from {lo} to {hi}",
    },
    "field.a_date": {"zh": "日期（YYYY-MM-DD）", "en": "a date YYYY-MM-DD"},
    "field.a_timestamp": {
        "zh": "带时区的时间戳（YYYY-MM-DDThh:mm[:ss[.ffffff]]，时区为 Z 或 ±hh:mm）",
        "en": "a timestamp YYYY-MM-DDThh:mm[:ss[.ffffff]] with offset (Z or ±hh:mm)",
    },
    "field.date_or_timestamp": {
        "zh": "日期（YYYY-MM-DD）或时间戳（YYYY-MM-DDThh:mm[:ss][时区]）",
        "en": "a date YYYY-MM-DD or a timestamp YYYY-MM-DDThh:mm[:ss][offset]",
    },
    "field.code_problem": {"zh": "代码{problem}", "en": "code {problem}"},
    "field.province_00": {
        "zh": "省级部分（前 2 位）不能是 00",
        "en": "the province part (first 2 digits) cannot be 00",
    },
    "field.village_township": {
        "zh": "村级代码需要乡镇部分（第 7–9 位不为 000）",
        "en": "a village code needs a township part (digits 7-9 not 000)",
    },
    "field.code_repeats": {"zh": "代码与第 {line} 行重复", "en": "code repeats line {line}"},
    "field.required_without_id": {"zh": "没有身份证号时必填", "en": "required without id_number"},
    "field.no_person_in_area": {"zh": "您的辖区内没有此人", "en": "no such person in your area"},
    "field.own_parent": {"zh": "一个人不能是自己的父母", "en": "a person cannot be their own parent"},
    "field.parent_sex": {"zh": "{parent} 的性别必须是 {sex}", "en": "the {parent} must be {sex}"},
    "field.parent_age": {
        "zh": "孩子出生时父/母不满 {age} 岁",
        "en": "the parent was under {age} at the child's birth",
    },
    "field.years_ago": {"zh": "早于 {years} 年前", "en": "more than {years} years ago"},
    "field.not_future": {"zh": "不得晚于今天", "en": "must not be in the future"},
    "field.not_past": {"zh": "不得早于今天", "en": "must not be in the past"},
    "field.not_null": {"zh": "不能为 null", "en": "must not be null"},
    "field.not_null_leave_out": {
        "zh": "不能为 null（要保留原值请不传此字段）",
        "en": "must not be null (leave the field out to keep its value)",
    },
    "field.not_blank": {"zh": "不能为空", "en": "must not be blank"},
    "field.not_negative": {"zh": "不能为负数", "en": "must not be negative"},
    "field.not_before_from": {"zh": "不得早于 from", "en": "must not be before from"},
    "field.not_before_moved_on": {"zh": "不得早于 moved_on", "en": "must not be before moved_on"},
    "field.not_before_visit": {"zh": "不得早于走访日期", "en": "must not be before the visit"},
    "field.control": {
        "zh": "不得含有 NUL 或控制字符（仅允许制表符和换行）",
        "en": "must not contain NUL or control characters (only tab and newline are allowed)",
    },
    "field.control_short": {"zh": "不得含有控制字符", "en": "must not contain control characters"},
    "field.birth_mismatch": {"zh": "出生日期与身份证号不符", "en": "birth date disagrees with the ID number"},
    "field.sex_mismatch": {"zh": "性别与身份证号不符", "en": "sex disagrees with the ID number"},
    "field.id_removed": {
        "zh": "身份证号一经登记不能删除",
        "en": "an ID number cannot be removed once recorded",
    },
    "field.death_before_birth": {
        "zh": "死亡日期早于出生日期",
        "en": "the death date is before the birth date",
    },
    "field.head_living": {
        "zh": "户主必须是该户在世的成员",
        "en": "the head must be a living member of the household",
    },
    "field.not_member": {"zh": "此人不是该户成员", "en": "the person is not a member of this household"},
    "field.merge_self": {"zh": "记录不能合并到自身", "en": "a record cannot be merged into itself"},
    "field.mother_female": {"zh": "母亲必须是女性", "en": "the mother must be female"},
    "field.not_round_item": {"zh": "不是本轮次的项目", "en": "not an item of this round"},
    "field.items_repeat": {"zh": "项目不能重复", "en": "items must not repeat"},
    "field.window_order": {"zh": "opens_on 不得晚于 closes_on", "en": "opens_on must not be after closes_on"},
    "field.checkup_result_op": {"zh": "checkup_result 操作必填", "en": "required for a checkup_result op"},
    "field.payee_required": {
        "zh": "提交前需要填写收款账户",
        "en": "a payee account is required before submitting",
    },
    "field.payee_account_of": {"zh": "必须是 {name} 的账户", "en": "must be the account of {name}"},
    "field.reason_required": {
        "zh": "退回或不予通过时必须填写理由",
        "en": "a reason is required to return or reject a claim",
    },
    "field.no_payee": {"zh": "该申领没有收款账户", "en": "the claim has no payee account"},
    "field.paid_on_after": {
        "zh": "必须晚于 {until} 且不得晚于今天",
        "en": "must be after {until} and not in the future",
    },
    "field.approved_amount": {"zh": "必须是批准金额 {amount}", "en": "must be the approved amount {amount}"},
    "field.approved_states": {
        "zh": "必须是已批准、公示中或已发放",
        "en": "must be approved, posted or paid",
    },
    "field.childcare_applicant": {
        "zh": "只有育儿补贴由他人（父母）申领",
        "en": "only the childcare subsidy is claimed by another person",
    },
    "field.childcare_parent": {
        "zh": "育儿补贴需要申请的父/母",
        "en": "the childcare subsidy needs the parent applying",
    },
    "field.county_code": {
        "zh": "必须是县级代码（12 位，以 000000 结尾）",
        "en": "must be a county's code (12 digits ending in 000000)",
    },
    "field.own_county_code": {
        "zh": "必须是本县代码；全国版本随服务发布",
        "en": "must be your county's code; national versions ship with the service",
    },
    "field.amount_yuan": {
        "zh": "必须是元为单位的金额，如“960.00”",
        "en": "must be an amount of yuan like '960.00' ({error})",
    },
    "field.household_village": {"zh": "该户不在此村", "en": "the household is not in that village"},
    "field.household_receiving": {
        "zh": "该户不在迁入村",
        "en": "the household is not in the receiving village",
    },
    "field.address_new_person": {
        "zh": "登记新人员时必填（该户的地址）",
        "en": "required to register a new person (the household's address)",
    },
    "field.address_new_household": {
        "zh": "必填（她在本地新户的地址），或提供 household_id",
        "en": "required (the address of her new household here), or give household_id",
    },
    "field.outflow_home": {
        "zh": "流出记录由此人户籍所在村持有",
        "en": "an outflow is held by the person's home village",
    },
    "field.no_village": {"zh": "没有该村或乡镇", "en": "no such village or township"},
    "field.village_only": {
        "zh": "必须是村（仅 business_licensed 可为乡镇）",
        "en": "must be a village (a township only for business_licensed)",
    },
    "field.choose_village": {
        "zh": "请为此乡镇级通知选择村",
        "en": "choose the village of this township-level notification",
    },
    "field.village_not_in_township": {
        "zh": "该村不在通知所指的乡镇内",
        "en": "the village is not in the notification's township",
    },
    "field.other_village": {"zh": "该通知指向另一个村", "en": "the notification names another village"},
    "field.key_reused": {"zh": "已用于不同的请求体", "en": "already used with a different body"},
    "field.village_code_format": {
        "zh": "必须是村级代码（12 位，末 3 位不为 000）",
        "en": "must be a village code (12 digits, last 3 not 000)",
    },
    "field.area_code_format": {"zh": "必须是 12 位区划代码", "en": "must be a 12-digit area code"},
    "field.phone_format": {
        "zh": "必须是 5–20 位数字的电话号码",
        "en": "must be a phone number of 5-20 digits",
    },
    "field.account_format": {
        "zh": "必须是 8–32 位数字的银行账号或卡号",
        "en": "must be a bank account or card number of 8-32 digits",
    },
    "field.person_xor": {
        "zh": "person_id 和 person 必须且只能提供一个",
        "en": "give exactly one of person_id and person",
    },
    "field.destination_outflow": {"zh": "destination 只用于流出", "en": "destination is for outflows"},
    "field.origin_inflow": {"zh": "origin_area_code 只用于流入", "en": "origin_area_code is for inflows"},
    "field.outflow_person_id": {
        "zh": "流出须用 person_id 指明已登记的居民",
        "en": "an outflow names a registered resident by person_id",
    },
    "field.machine_client_role": {
        "zh": "机器客户端只能是 partner 或 dashboard",
        "en": "a machine client is a partner or a dashboard",
    },
    "field.machine_roles": {
        "zh": "机器角色只能授予客户端，不能授予用户",
        "en": "machine roles are given to clients, not users",
    },
    # ID numbers
    "field.id_15": {
        "zh": "不接受 15 位旧号码，请使用 18 位号码",
        "en": "15-digit old-format numbers are not accepted; use the 18-digit number",
    },
    "field.id_18": {"zh": "必须是 18 个字符", "en": "must be 18 characters"},
    "field.id_17_digits": {"zh": "前 17 位必须是数字", "en": "first 17 characters must be digits"},
    "field.id_last": {"zh": "最后一位必须是数字或 X", "en": "last character must be a digit or X"},
    "field.id_area": {"zh": "地区码未知", "en": "unknown area code"},
    "field.id_birth": {"zh": "出生日期不存在", "en": "impossible birth date"},
    "field.id_birth_future": {"zh": "出生日期晚于今天", "en": "birth date in the future"},
    "field.id_check": {"zh": "校验码错误", "en": "wrong check character"},
    # claim check reasons (reasons[].detail)
    "reason.born": {
        "zh": "出生于 {born}；须在 {floor} 或以后出生",
        "en": "born {born}; must be born on or after {floor}",
    },
    "reason.min_age": {
        "zh": "{year_reached} 年满 {age} 周岁；须在 {year} 年或以前",
        "en": "turns {age} in {year_reached}; must be in or before {year}",
    },
    "reason.alive": {"zh": "在世", "en": "alive"},
    "reason.died_on": {"zh": "于 {date} 去世", "en": "died on {date}"},
    "reason.rural_declared": {"zh": "申报为农村居民", "en": "declared rural residents"},
    "reason.not_rural_declared": {"zh": "申报为非农村居民", "en": "declared not rural residents"},
    "reason.household_type": {
        "zh": "户籍登记为 {type}（如不同请申报 hukou_rural）",
        "en": "household registered as {type} (declare hukou_rural if it differs)",
    },
    "reason.policy_kept": {
        "zh": "已申报：{lo}–{hi} 年间无政策外生育",
        "en": "declared: no births against the policy in {lo}–{hi}",
    },
    "reason.policy_broken": {
        "zh": "已申报：{lo}–{hi} 年间有政策外生育",
        "en": "declared: births against the policy in {lo}–{hi}",
    },
    "reason.policy_undeclared": {
        "zh": "未申报 {lo}–{hi} 年间的生育是否符合政策",
        "en": "not declared whether births in {lo}–{hi} kept to the policy",
    },
    "reason.no_children": {"zh": "登记中无子女", "en": "no children on the register"},
    "reason.one_living_child": {"zh": "一个在世子女", "en": "one living child"},
    "reason.two_daughters": {"zh": "两个在世子女，均为女儿", "en": "two living children, both daughters"},
    "reason.none_alive": {"zh": "曾有 {n} 个子女，均已去世", "en": "had {n} child(ren), none is alive"},
    "reason.living_children": {
        "zh": "{n} 个在世子女（{sons} 个儿子，{daughters} 个女儿）",
        "en": "{n} living children ({sons} sons, {daughters} daughters)",
    },
    "reason.one_child_born": {
        "zh": "登记中有一个子女（出生于 {born}）",
        "en": "one child on the register (born {born})",
    },
    "reason.children_must_be_one": {
        "zh": "登记中有 {n} 个子女；须为一个",
        "en": "{n} children on the register; must be one",
    },
    "reason.child_died": {"zh": "子女于 {date} 去世", "en": "the child died on {date}"},
    "reason.disability_grade": {
        "zh": "子女持有 {grade} 级残疾证",
        "en": "the child holds a disability certificate of grade {grade}",
    },
    "reason.grade_too_low": {
        "zh": "残疾等级 {grade}；1–{max} 级符合条件",
        "en": "disability grade {grade}; grades 1–{max} qualify",
    },
    "reason.child_alive_no_grade": {
        "zh": "子女在世且未申报 1–{max} 级残疾",
        "en": "the child is alive and no disability grade 1–{max} is declared",
    },
    "reason.no_child": {"zh": "登记中无子女", "en": "no child on the register"},
    "reason.later_declared": {"zh": "已申报再生育或收养", "en": "declared a later birth or adoption"},
    "reason.later_child": {"zh": "有后生子女，出生于 {born}", "en": "a later child born {born}"},
    "reason.no_later": {"zh": "无再生育或收养", "en": "no later birth or adoption"},
    "reason.parents_born": {"zh": "{who}出生于 {floor} 或以后", "en": "{who} born on or after {floor}"},
    "reason.both_parents": {"zh": "父母双方", "en": "both parents"},
    "reason.the_parent": {"zh": "父/母", "en": "the parent"},
    "reason.parent_too_old": {
        "zh": "父/母一方出生于 {born}，早于 {floor}",
        "en": "a parent born {born}, before {floor}",
    },
    "reason.turns_age": {"zh": "{who}于 {date} 年满 {age} 周岁", "en": "{who} turns {age} on {date}"},
    "reason.the_mother": {"zh": "母亲", "en": "the mother"},
    "reason.single_parent": {"zh": "父/母（单亲）", "en": "the parent (single)"},
    "reason.months": {
        "zh": "{year} 年有 {n} 个符合条件的月份（{span}）",
        "en": "{n} eligible months in {year} ({span})",
    },
    "reason.none": {"zh": "无", "en": "none"},
    "reason.moved_away": {
        "zh": "受益人现居住在您的辖区以外",
        "en": "the beneficiary now lives outside your area",
    },
    "reason.no_months": {
        "zh": "上述规则未通过，无符合条件的月份",
        "en": "no eligible months while a rule above fails",
    },
    "reason.applicant_parent": {
        "zh": "申请人是登记中该儿童的父/母",
        "en": "the applicant is the child's parent on the register",
    },
    "reason.no_applicant": {"zh": "未提供申请的父/母", "en": "no applicant parent given"},
    "reason.applicant_not_parent": {
        "zh": "申请人不是该儿童的父/母",
        "en": "the applicant is not the child's parent",
    },
    "reason.same_household": {"zh": "申请人与儿童同户", "en": "the applicant lives in the child's household"},
    "reason.other_household": {"zh": "申请人在另一户", "en": "the applicant is in another household"},
    "reason.applicant_deceased": {"zh": "申请人已故", "en": "the applicant is deceased"},
    "reason.childcare_months_span": {
        "zh": "出生于 {born}：补贴月份 {first}–{last}，自 {count_from} 起计；{year} 年 {n} 个月（{span}）",
        "en": "born {born}: months {first}–{last}, counted from {count_from}; {n} in {year} ({span})",
    },
    "reason.childcare_months": {
        "zh": "出生于 {born}：补贴月份 {first}–{last}，自 {count_from} 起计；{year} 年 {n} 个月",
        "en": "born {born}: months {first}–{last}, counted from {count_from}; {n} in {year}",
    },
    "reason.certificate": {
        "zh": "已申报：持有独生子女父母光荣证",
        "en": "declared: holds the only-child parents' certificate",
    },
    "reason.no_certificate": {
        "zh": "未申报独生子女父母光荣证",
        "en": "no only-child parents' certificate declared",
    },
    "reason.one_child_count": {
        "zh": "登记中有 {n} 个子女；须为一个",
        "en": "{n} child(ren) on the register; must be one",
    },
    "reason.child_age": {
        "zh": "子女在 {year}-01-01 为 {age} 岁；未满 {max} 岁期间发放",
        "en": "the child is {age} on {year}-01-01; paid while under {max}",
    },
    # data-quality details
    "dq.likely_duplicate": {
        "zh": "与人员 {id} 姓名和出生日期相同",
        "en": "same name and birth date as person {id}",
    },
    "dq.child_before_mother_15": {
        "zh": "出生时母亲 {id} 未满 15 岁",
        "en": "born before mother {id} turned 15",
    },
    "dq.married_under_20": {"zh": "已婚女性未满 20 岁", "en": "married woman under 20"},
    "dq.over_110": {"zh": "超过 110 岁且未登记死亡", "en": "over 110 and not recorded as deceased"},
    "dq.no_head": {"zh": "该户没有户主", "en": "no head of household"},
    "dq.no_living_member": {"zh": "该户没有在世成员", "en": "no living member"},
    "dq.village_mismatch": {
        "zh": "居住在 {village}，户在别处",
        "en": "lives in {village}, household elsewhere",
    },
    # task titles (``title`` in Chinese, ``title_en`` in English; see app/services/tasks.py)
    "task.checkup_due": {"zh": "三查到期：{name}（{round}）", "en": "Checkup due: {name} ({round})"},
    "task.prenatal_care": {"zh": "产前保健随访：{name}", "en": "Prenatal care visit: {name}"},
    "task.referral": {"zh": "妇科筛查异常转诊：{name}", "en": "Referral after abnormal screening: {name}"},
    "task.follow_up": {"zh": "走访跟进（{purpose}）：{name}", "en": "Follow-up of {purpose} visit: {name}"},
    "task.follow_up_household": {"zh": "走访跟进（{purpose}）", "en": "Follow-up of {purpose} visit"},
    "task.claim_review": {
        "zh": "待审核的待遇申领（{programme} {year}）：{name}",
        "en": "Review benefit claim ({programme} {year}): {name}",
    },
    "task.claim_correction.township": {
        "zh": "退回的待遇申领待修改（{programme} {year}）：{name} — 乡镇意见：{comment}",
        "en": "Correct returned benefit claim ({programme} {year}): {name} — township's comment: {comment}",
    },
    "task.claim_correction.county": {
        "zh": "退回的待遇申领待修改（{programme} {year}）：{name} — 县意见：{comment}",
        "en": "Correct returned benefit claim ({programme} {year}): {name} — county's comment: {comment}",
    },
    "task.claim_moved_in": {
        "zh": "受益人迁入，请核查未完成的申领（{programme} {year}）：{name}",
        "en": "Beneficiary moved in: check pending claim ({programme} {year}): {name}",
    },
    "task.residence_registered": {
        "zh": "居住登记待确认：{name}，{address}",
        "en": "Residence registered, to confirm: {name}, {address}",
    },
    "task.residence_cancelled": {
        "zh": "居住登记已注销：{name}，请核实并注销流入记录",
        "en": "Residence cancelled: {name}; check and close the inflow record",
    },
    "task.business_licensed": {
        "zh": "营业执照登记待确认：{name}，{address}",
        "en": "Business licence registered, to confirm: {name}, {address}",
    },
    "task.migrant_release": {
        "zh": "放行确认：{name}已在{place}登记流入（登记姓名：{registered_name}，{moved_on}起），"
        "请确认放行或拒绝",
        "en": "Release to confirm: {name} was registered as an inflow in {place} (as {registered_name}, "
        "from {moved_on}); confirm or refuse the move",
    },
    # deliberately without her name: the receiving village never learns whom the number named
    "task.migrant_refused": {
        "zh": "迁入未获原籍放行（{moved_on}起的流入登记）：{reason}",
        "en": "Move refused by the place of origin (inflow from {moved_on}): {reason}",
    },
    # visit purposes, programmes and review levels as task titles name them
    "purpose.postnatal": {"zh": "产后访视", "en": "postnatal"},
    "purpose.elder_care": {"zh": "老年关怀", "en": "elder care"},
    "purpose.special_family_care": {"zh": "特殊家庭关怀", "en": "special family care"},
    "purpose.checkup_reminder": {"zh": "三查提醒", "en": "checkup reminder"},
    "purpose.migrant_followup": {"zh": "流动人口随访", "en": "migrant follow-up"},
    "purpose.claim_verification": {"zh": "申领核实", "en": "claim verification"},
    "purpose.health_education": {"zh": "健康教育", "en": "health education"},
    "purpose.other": {"zh": "其他", "en": "other"},
    "programme.rural_reward": {"zh": "农村奖扶", "en": "rural reward"},
    "programme.special_assistance": {"zh": "特别扶助", "en": "special assistance"},
    "programme.childcare_subsidy": {"zh": "育儿补贴", "en": "childcare subsidy"},
    "programme.only_child_parent_reward": {"zh": "独生子女父母奖励", "en": "only-child parents' reward"},
    # record kinds, as "No {model} with this id" names them
    "noun.person": {"zh": "人员", "en": "person"},
    "noun.household": {"zh": "户", "en": "household"},
    "noun.visit": {"zh": "走访记录", "en": "visit"},
    "noun.task": {"zh": "任务", "en": "task"},
    "noun.checkupappointment": {"zh": "检查预约", "en": "checkupappointment"},
    "noun.migrant": {"zh": "流动人口记录", "en": "migrant"},
    "noun.partnernotification": {"zh": "通知", "en": "partnernotification"},
    "noun.syncconflict": {"zh": "同步冲突", "en": "syncconflict"},
    "noun.claim": {"zh": "申领", "en": "claim"},
    "noun.user": {"zh": "用户", "en": "user"},
    "noun.client": {"zh": "机器终端", "en": "client"},
    # CSV headers (the English header is the field name, as machine readers expect)
    "csv.claim_id": {"zh": "申领编号", "en": "claim_id"},
    "csv.programme": {"zh": "项目", "en": "programme"},
    "csv.year": {"zh": "年度", "en": "year"},
    "csv.village_code": {"zh": "村代码", "en": "village_code"},
    "csv.beneficiary_name": {"zh": "受益人姓名", "en": "beneficiary_name"},
    "csv.id_number_masked": {"zh": "身份证号（脱敏）", "en": "id_number_masked"},
    "csv.payee_name": {"zh": "收款人", "en": "payee_name"},
    "csv.payee_bank": {"zh": "开户银行", "en": "payee_bank"},
    "csv.payee_account": {"zh": "收款账号", "en": "payee_account"},
    "csv.amount": {"zh": "金额（元）", "en": "amount"},
    "csv.status": {"zh": "状态", "en": "status"},
    "csv.area_code": {"zh": "区划代码", "en": "area_code"},
    "csv.name": {"zh": "名称", "en": "name"},
    "csv.population": {"zh": "总人口", "en": "population"},
    "csv.households": {"zh": "户数", "en": "households"},
    "csv.married_women_15_49": {"zh": "已婚育龄妇女", "en": "married_women_15_49"},
    "csv.births.total": {"zh": "出生", "en": "births.total"},
    "csv.births.first": {"zh": "一孩", "en": "births.first"},
    "csv.births.second": {"zh": "二孩", "en": "births.second"},
    "csv.births.third_plus": {"zh": "三孩及以上", "en": "births.third_plus"},
    "csv.births.boys": {"zh": "男婴", "en": "births.boys"},
    "csv.births.girls": {"zh": "女婴", "en": "births.girls"},
    "csv.sex_ratio_at_birth": {"zh": "出生人口性别比", "en": "sex_ratio_at_birth"},
    "csv.deaths": {"zh": "死亡", "en": "deaths"},
    "csv.natural_growth_rate_per_mille": {"zh": "人口自然增长率(‰)", "en": "natural_growth_rate_per_mille"},
    "csv.migrants.inflow_open": {"zh": "流入人口", "en": "migrants.inflow_open"},
    "csv.migrants.outflow_open": {"zh": "流出人口", "en": "migrants.outflow_open"},
    "csv.migrants.inflow_new": {"zh": "新增流入", "en": "migrants.inflow_new"},
    "csv.migrants.outflow_new": {"zh": "新增流出", "en": "migrants.outflow_new"},
    "csv.migrants.inflow_women_15_49": {"zh": "流入育龄妇女", "en": "migrants.inflow_women_15_49"},
    "csv.checkups.due": {"zh": "应查", "en": "checkups.due"},
    "csv.checkups.done": {"zh": "已查", "en": "checkups.done"},
    "csv.checkups.rate": {"zh": "到位率(%)", "en": "checkups.rate"},
    "csv.visits": {"zh": "入户走访", "en": "visits"},
    "csv.data_quality_open": {"zh": "数据质量问题", "en": "data_quality_open"},
    "csv.claims.new": {"zh": "{programme}新增", "en": "claims.{code}.new"},
    "csv.claims.continuing": {"zh": "{programme}续发", "en": "claims.{code}.continuing"},
    "csv.claims.exited": {"zh": "{programme}退出", "en": "claims.{code}.exited"},
    "csv.claims.total": {"zh": "{programme}合计", "en": "claims.{code}.total"},
    "csv.claims.amount": {"zh": "{programme}金额（元）", "en": "claims.{code}.amount"},
    "csv.claims.in_payment": {"zh": "{programme}待发放", "en": "claims.{code}.in_payment"},
    "csv.claims.in_payment_amount": {
        "zh": "{programme}待发放金额（元）",
        "en": "claims.{code}.in_payment_amount",
    },
    # claim statuses and user roles as parametrised details show them
    "status.draft": {"zh": "草稿", "en": "draft"},
    "status.submitted": {"zh": "已提交", "en": "submitted"},
    "status.reviewed": {"zh": "已审核", "en": "reviewed"},
    "status.returned": {"zh": "已退回", "en": "returned"},
    "status.rejected": {"zh": "不予通过", "en": "rejected"},
    "status.approved": {"zh": "已审批", "en": "approved"},
    "status.posted": {"zh": "公示中", "en": "posted"},
    "status.paid": {"zh": "已发放", "en": "paid"},
    "status.withdrawn": {"zh": "已撤回", "en": "withdrawn"},
    # claim actions, as "A {status} claim cannot {action}" names them
    "action.submit": {"zh": "提交", "en": "submit"},
    "action.review": {"zh": "审核", "en": "review"},
    "action.approve": {"zh": "审批", "en": "approve"},
    "action.publish": {"zh": "公示", "en": "publish"},
    "action.object": {"zh": "提出异议", "en": "object"},
    "action.pay": {"zh": "发放", "en": "pay"},
    "action.change_payee": {"zh": "更改收款人", "en": "change payee"},
    "role.village": {"zh": "村级", "en": "village"},
    "role.township": {"zh": "乡镇", "en": "township"},
    "role.county": {"zh": "县级", "en": "county"},
    "role.admin": {"zh": "管理员", "en": "admin"},
}

# Pydantic's own messages, by error type (English: pydantic-core's template, read at import).
PYDANTIC_ZH: dict[str, str] = {
    "missing": "必填字段",
    "extra_forbidden": "不允许的额外字段",
    "json_invalid": "JSON 无效：{error}",
    "json_type": "JSON 输入应为字符串或字节",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "list_type": "应为列表",
    "tuple_type": "应为列表",
    "set_type": "应为列表",
    "none_required": "应为 null",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应大于或等于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应小于或等于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "finite_number": "应为有限数值",
    "too_short": "至少应有 {min_length} 项，实际 {actual_length} 项",
    "too_long": "最多 {max_length} 项，实际 {actual_length} 项",
    "string_type": "应为字符串",
    "string_unicode": "应为有效的 Unicode 字符串",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不符（应匹配 {pattern}）",
    "enum": "应为以下之一：{expected}",
    "literal_error": "应为以下之一：{expected}",
    "bool_type": "应为布尔值",
    "bool_parsing": "应为布尔值",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_parsing_size": "整数超出范围",
    "int_from_float": "应为整数，不能有小数部分",
    "float_type": "应为数值",
    "float_parsing": "应为数值",
    "value_error": "{error}",
    "assertion_error": "{error}",
    "date_type": "应为日期",
    "date_parsing": "应为 YYYY-MM-DD 格式的日期（{error}）",
    "date_from_datetime_parsing": "应为日期（{error}）",
    "date_from_datetime_inexact": "日期不能带时间",
    "date_past": "日期应早于今天",
    "date_future": "日期应晚于今天",
    "datetime_type": "应为时间戳",
    "datetime_parsing": "应为带时区的 ISO 8601 时间戳（{error}）",
    "datetime_from_date_parsing": "应为时间戳（{error}）",
    "datetime_object_invalid": "时间戳无效（{error}）",
    "timezone_naive": "不应带时区",
    "timezone_aware": "应带时区",
    "uuid_type": "应为 UUID",
    "uuid_parsing": "应为有效的 UUID（{error}）",
    "decimal_type": "应为数值",
    "decimal_parsing": "应为有效的数值",
    "decimal_max_digits": "数值最多 {max_digits} 位",
    "decimal_max_places": "最多 {decimal_places} 位小数",
    "decimal_whole_digits": "整数部分最多 {whole_digits} 位",
    "union_tag_invalid": "类型标记 {tag} 无效，应为 {expected_tags}",
    "union_tag_not_found": "缺少类型标记 {discriminator}",
    "url_parsing": "应为有效的 URL（{error}）",
}


def _pydantic_templates() -> dict[str, str]:
    try:
        from pydantic_core._pydantic_core import list_all_errors
    except ImportError:  # pragma: no cover - an older pydantic-core: exact English fallback
        return {}
    return {e["type"]: e["message_template_python"] for e in list_all_errors()}


for _type, _en in _pydantic_templates().items():
    if _type in PYDANTIC_ZH:
        MESSAGES[f"v.{_type}"] = {"zh": PYDANTIC_ZH[_type], "en": _en}


# --- rendering ----------------------------------------------------------------------------------

_FORMATTER = string.Formatter()


def params_of(template: str) -> list[str]:
    return [name for _lit, name, _spec, _conv in _FORMATTER.parse(template) if name is not None]


class Ref(str):
    """A parameter that is itself a message id (a programme's or a visit purpose's name):
    rendered in the language of the message it goes into."""


def _render(template: str, params: dict[str, object], lang: str) -> str:
    if not params_of(template):
        return template
    return template.format(**{k: MESSAGES[v][lang] if isinstance(v, Ref) else v for k, v in params.items()})


def text(key: str, lang: str | None = None, /, **params: object) -> str:
    """The message ``key`` in ``lang`` (default: the request's); KeyError for an unknown id."""
    lang = lang or current_language()
    return _render(MESSAGES[key][lang], params, lang)


def msg(key: str, /, **params: object) -> str:
    """The English text of ``key`` (what a raise site writes; translated when rendered)."""
    return text(key, "en", **params)


def both(key: str, /, **params: object) -> tuple[str, str]:
    """(Chinese, English) of ``key``."""
    return text(key, "zh", **params), text(key, "en", **params)


# Rendered by id only (``text``, ``column``), never looked up from English: a column header
# "year" or a purpose "other" must not turn a word inside some other text into Chinese.
RENDERED_ONLY = ("csv.", "task.", "purpose.", "programme.")


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """English text → id for the messages without parameters; (pattern, id) for the others,
    the most specific (most literal text) first."""
    exact: dict[str, str] = {}
    patterns: list[tuple[int, re.Pattern[str], str]] = []
    for key, entry in MESSAGES.items():
        if key.startswith(RENDERED_ONLY):
            continue
        en = entry["en"]
        names = params_of(en)
        if not names:
            exact.setdefault(en, key)
            continue
        regex, literal, seen = "", 0, set()
        for lit, name, _spec, _conv in _FORMATTER.parse(en):
            regex += re.escape(lit)
            literal += len(lit)
            if name is None:
                continue
            if name in seen:
                regex += f"(?P={name})"
            else:
                seen.add(name)
                regex += f"(?P<{name}>s?)" if name == "expected_plural" else f"(?P<{name}>.+?)"
        patterns.append((literal, re.compile(regex + r"\Z", re.DOTALL), key))
    patterns.sort(key=lambda p: -p[0])
    return exact, [(p, k) for _n, p, k in patterns]


def translate(source: str, lang: str | None = None, _depth: int = 0) -> str:
    """A text written in English, in ``lang`` (default: the request's); as written when the
    catalogue does not know it (module docstring)."""
    lang = lang or current_language()
    if lang == "en" or not source:
        return source
    exact, patterns = _index()
    key = exact.get(source)
    if key is not None:
        return MESSAGES[key][lang]
    if _depth > 2:
        return source
    for pattern, key in patterns:
        m = pattern.match(source)
        if m is None:
            continue
        params = {name: translate(value, lang, _depth + 1) for name, value in m.groupdict().items()}
        if key in ("v.enum", "v.literal_error") and lang == "zh":
            params["expected"] = params["expected"].replace(" or ", " 或 ")
        try:
            return MESSAGES[key][lang].format(**params)
        except (KeyError, IndexError):  # pragma: no cover - the catalogue test keeps params equal
            return source
    return source


def translate_all(texts: Iterable[str], lang: str | None = None) -> list[str]:
    return [translate(t, lang) for t in texts]


def column(name: str, lang: str | None = None, default: str | None = None) -> str:
    """A CSV column header: ``csv.<name>`` in ``lang``; ``default`` (else the name itself)
    when not catalogued."""
    entry = MESSAGES.get(f"csv.{name}")
    return (name if default is None else default) if entry is None else entry[lang or current_language()]
