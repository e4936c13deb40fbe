"""The pages' two languages: English as written in the templates, and Simplified Chinese."""

from __future__ import annotations

LANGUAGES = ("en", "zh")

ZH: dict[str, str] = {
    "Console": "管理后台", "Overview": "总览", "Approvals": "审批", "Reports": "报表",
    "Audit log": "审计日志", "Log in": "登录", "Log out": "退出", "Username": "用户名",
    "Password": "密码", "Wrong username or password": "用户名或密码错误",
    "Too many attempts; try again later": "尝试次数过多，请稍后再试",
    "Site": "项目", "Building": "楼栋", "Floor": "楼层", "Search": "搜索",
    "Shop, unit or meter number": "商铺、铺位号或表号", "All": "全部", "Filter": "筛选",
    "open": "正常", "alarm1": "一级报警", "alarm2": "二级报警", "arrears": "欠费",
    "not_opened": "未开户", "offline": "离线", "keep_power": "保电", "closed": "已销户",
    "Account": "账户", "Accounts": "账户", "Meter": "电表", "Meters": "表计",
    "Wallet": "钱包", "Balance": "余额", "Days left": "可用天数",
    "electricity": "电费", "water": "水费", "property_fee": "物业费",
    "Statement": "流水", "Time": "时间", "Kind": "类型", "Amount": "金额",
    "Balance after": "余额", "Channel": "方式", "Operator": "操作员",
    "Sell credit": "售电", "Other amount": "其他金额", "Sell": "售电", "cash": "现金",
    "bank": "银行", "wechat": "微信", "alipay": "支付宝", "Gift": "赠送", "Reason": "原因",
    "Refund": "退费", "Reverse": "冲正", "Receipt": "收据", "Print receipt": "打印收据",
    "Sold": "已售", "Already recorded: nothing was credited twice": "已记录，未重复入账",
    "Waiting for a second person's approval": "等待第二人审批",
    "Open an account": "开户", "Open": "开户", "Name": "名称", "Unit": "铺位",
    "Close account": "销户", "Settlement": "结算", "refund": "退款", "forfeit": "不退",
    "Alert levels": "报警阈值", "Alarm 1": "一级报警", "Alarm 2": "二级报警", "Save": "保存",
    "Tenant link": "租户链接", "Issue link": "生成链接", "Reissue link": "重新生成",
    "Revoke link": "作废链接", "No link issued": "未生成链接", "Revoked": "已作废",
    "State": "状态", "Relay": "继电器", "reported": "上报", "wanted": "目标",
    "Online": "在线", "yes": "是", "no": "否", "Last reading": "最后读数",
    "Readings": "读数", "Consumption": "用电量", "Commands": "命令", "Status": "状态",
    "Attempts": "次数", "trip": "拉闸", "close": "合闸", "read_now": "立即抄表",
    "release_keep_power": "解除保电", "restore_prepaid": "恢复预付费",
    "Trip": "拉闸", "Close": "合闸", "Keep power": "保电", "Read now": "立即抄表",
    "Pending approvals": "待审批", "Requested by": "申请人", "Approve": "批准",
    "Reject": "驳回", "Note": "备注", "Nothing waiting": "没有待审批事项", "Decided": "已处理",
    "pending": "待审批", "approved": "已批准", "rejected": "已驳回",
    "Sales": "售电", "Sales by day": "按日售电", "Sales by month": "按月售电",
    "Account periods": "期初期末", "Energy by building": "分楼栋能耗", "Alarms": "报警",
    "Offline": "离线", "Losses": "线损", "Month": "月份", "Master meter": "总表",
    "Show": "显示", "Download": "下载", "Period": "期间", "Net paid": "净收款",
    "Action": "操作", "Actor": "操作人", "Request": "请求", "Aggregate": "对象",
    "From": "从", "To": "到", "Next page": "下一页", "Forbidden": "无权操作",
    "Not found": "未找到", "Back": "返回", "Something went wrong": "出错了",
    "Error": "错误", "Alerts": "提醒", "Receipts": "收据", "Pay": "充值",
    "Last 30 days": "近30天", "Choose an amount": "选择金额", "Pay with WeChat": "微信支付",
    "Pay with Alipay": "支付宝支付",
    "Paid in WeChat; waiting for the confirmation": "已在微信中支付，等待确认",
    "Not paid: you cancelled": "未支付：已取消",
    "Not paid: WeChat Pay refused": "未支付：微信支付未成功",
    "The WeChat sign-in has expired; please try again": "微信授权已过期，请重试", "Scan with WeChat to pay": "请用微信扫码支付",
    "Waiting for the payment": "等待支付", "Paid: the new balance": "支付成功，新余额",
    "Order": "订单", "created": "已创建", "credited": "已入账", "expired": "已过期",
    "paid": "已支付", "failed": "失败", "This link is no longer valid": "该链接已失效",
    "Open my shop": "打开我的商铺", "My accounts": "我的账户", "No alerts": "没有提醒",
    "Language": "语言", "Count": "数量", "kWh": "千瓦时", "yuan": "元",
    "Your session has expired; log in again": "登录已过期，请重新登录",
    "The form has expired; please try again": "表单已过期，请重试",
    "Shops": "商铺", "Keep power until": "保电至", "Command sent": "命令已发送",
    "top_up": "充值", "charge": "扣费", "gift": "赠送", "reversal": "冲正", "adjustment": "调整",
    "opening": "期初", "closing": "期末", "gateway": "网关", "meter": "电表",
    "Link for the tenant": "租户查询链接", "acknowledged": "已确认", "queued": "排队中",
    "sent": "已发送", "confirmed": "已确认", "done": "完成",
    # report columns
    "period": "期间", "channel": "方式", "operator": "操作员", "building": "楼栋",
    "top_ups": "充值", "refunds": "退费", "reversals": "冲正", "gifts": "赠送",
    "net_paid": "净收款", "energy_kwh": "电量(kWh)", "amount": "金额", "name": "名称",
    "wallet": "钱包", "account_id": "账户", "consumption_kwh": "用电量(kWh)",
    "kind": "类型", "subject": "对象", "detail": "说明", "raised_at": "时间",
    "month": "月份", "master_meter": "总表", "master_kwh": "总表电量",
    "sub_meters": "分表数", "sub_meters_kwh": "分表电量", "loss_kwh": "损耗电量",
    "loss_percent": "损耗率(%)",
}


# Codes shown to people in English (states, kinds, wallets, channels).
EN: dict[str, str] = {
    "open": "Open", "alarm1": "Alarm 1", "alarm2": "Alarm 2", "arrears": "Arrears",
    "not_opened": "Not opened", "offline": "Offline", "keep_power": "Keep power",
    "closed": "Closed", "electricity": "Electricity", "water": "Water",
    "property_fee": "Property fee", "cash": "Cash", "bank": "Bank", "wechat": "WeChat Pay",
    "alipay": "Alipay", "top_up": "Top-up", "charge": "Charge", "reversal": "Reversal",
    "adjustment": "Adjustment", "refund": "Refund", "gift": "Gift", "forfeit": "Forfeit",
    "trip": "Trip", "close": "Close", "read_now": "Read now",
    "release_keep_power": "Release keep power", "restore_prepaid": "Restore prepaid",
    "pending": "Pending", "approved": "Approved", "rejected": "Rejected",
    "acknowledged": "Acknowledged", "queued": "Queued", "sent": "Sent",
    "created": "Created", "credited": "Credited", "expired": "Expired", "failed": "Failed",
}


def pick_language(cookie: str | None, accept: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for part in (accept or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def translator(language: str):
    if language == "zh":
        return lambda text: ZH.get(text, text)
    return lambda text: EN.get(text, text)
