"""Commands as data: what a route, a task or an approval asks the ledger to do.

``base`` says what a command is and how the ledger finds the service that carries it out;
each feature's commands live beside it (``money``, ``devices``, ...); ``approvals`` says
which of them an approval may hold and which need a second person.
"""

from ledger.commands.alerts import (
    AlertNotFound,
    NotificationContext,
    ObservationContext,
    ObserveBalance,
    ObserveBalances,
    RecordNotification,
    SetAlertThresholds,
    ThresholdContext,
)
from ledger.commands.access import (
    AccessContext,
    ApprovalContext,
    Approve,
    ChangeOperator,
    IssueApiKey,
    Reject,
    RegisterOperator,
    RequestApproval,
    RevokeApiKey,
)
from ledger.commands.approvals import APPROVABLE, ApprovalPolicy, command_from_approval
from ledger.commands.base import Command, Handler, Handles, handler_table, iso, when
from ledger.commands.cutoff import (
    AddHoliday,
    CutoffContext,
    RemoveHoliday,
    RunCutoff,
    SetAccountCutoffPolicy,
    SetMeterTimetable,
    SetSiteCutoffPolicy,
)
from ledger.commands.devices import (
    CommandNotFound,
    DeviceContext,
    EnforceBalances,
    IssueContext,
    IssueDeviceCommand,
    KeepPower,
    LapseKeepPower,
    RecordCommandOutcome,
    RecordGatewayReachable,
    RecordGatewayUnreachable,
    RecordPollFailures,
    RecordPollSuccesses,
)
from ledger.commands.metering import (
    AddBuilding,
    AddTariffVersion,
    AddUnit,
    AssignmentContext,
    AssignTariff,
    BindMeter,
    ChangeContext,
    ChargeReading,
    CreateContext,
    CreateSite,
    CreateTariff,
    GatewayContext,
    MeterContext,
    ReadingContext,
    ReadingInput,
    RegisterGateway,
    RegisterMeter,
    ReplaceMeter,
    TakeReadings,
    UnbindMeter,
)
from ledger.commands.money import (
    Adjust,
    CloseAccount,
    Gift,
    MoneyCommand,
    OpenAccount,
    Refund,
    Reverse,
    TopUp,
    channel_of,
    wallet_of,
)
from ledger.commands.property import (
    AllocatePool,
    AllocationContext,
    ChangePoolRule,
    ChargePropertyFee,
    CreatePool,
    FeeScheduleContext,
    PoolContext,
    PoolNotFound,
    RunPropertyFees,
    SetFeeSchedule,
    UnpricedEnergy,
)
from ledger.commands.payments import (
    ClosePaymentOrder,
    CreatePaymentOrder,
    CreditContext,
    CreditPayment,
    OrderContext,
    PaymentContext,
    RecordRejectedNotification,
    RefundContext,
    RefundPayment,
    SettleRefund,
)
from ledger.commands.periods import ClosePeriod, PeriodContext, PeriodNotOver

__all__ = ["APPROVABLE", "Adjust", "ApprovalPolicy", "CloseAccount", "Command", "Gift",
           "Handler", "Handles", "KeepPower", "MoneyCommand", "OpenAccount", "Refund",
           "Reverse", "TopUp", "channel_of", "command_from_approval", "handler_table", "iso",
           "wallet_of", "when"]
__all__ += ["AlertNotFound", "NotificationContext", "ObservationContext", "ObserveBalance",
            "ObserveBalances", "RecordNotification", "SetAlertThresholds", "ThresholdContext"]
__all__ += ["AllocatePool", "AllocationContext", "ChangePoolRule", "ChargePropertyFee",
            "CreatePool", "FeeScheduleContext", "PoolContext", "PoolNotFound",
            "RunPropertyFees", "SetFeeSchedule", "UnpricedEnergy"]
__all__ += ["ClosePaymentOrder", "CreatePaymentOrder", "CreditContext", "CreditPayment",
            "OrderContext", "PaymentContext", "RecordRejectedNotification", "RefundContext",
            "RefundPayment", "SettleRefund"]
__all__ += ["AccessContext", "ApprovalContext", "Approve", "ChangeOperator", "IssueApiKey",
            "Reject", "RegisterOperator", "RequestApproval", "RevokeApiKey"]
__all__ += ["CommandNotFound", "DeviceContext", "EnforceBalances", "IssueContext",
            "IssueDeviceCommand", "LapseKeepPower", "RecordCommandOutcome",
            "RecordGatewayReachable", "RecordGatewayUnreachable", "RecordPollFailures",
            "RecordPollSuccesses"]
__all__ += ["AddHoliday", "CutoffContext", "RemoveHoliday", "RunCutoff",
            "SetAccountCutoffPolicy", "SetMeterTimetable", "SetSiteCutoffPolicy"]
__all__ += ["AddBuilding", "AddTariffVersion", "AddUnit", "AssignTariff",
            "AssignmentContext", "BindMeter", "ChangeContext", "ChargeReading",
            "CreateContext", "CreateSite", "CreateTariff", "GatewayContext", "MeterContext",
            "ReadingContext", "ReadingInput", "RegisterGateway", "RegisterMeter",
            "ReplaceMeter", "TakeReadings", "UnbindMeter"]
__all__ += ["ClosePeriod", "PeriodContext", "PeriodNotOver"]
