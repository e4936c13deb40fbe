"""Commands as data: what a route, a task or an approval asks the ledger to do.

``base`` says what a command is and how the ledger finds the service that carries it out;
each feature's commands live beside it (``money``, ``devices``, ...); ``approvals`` says
which of them an approval may hold and which need a second person.
"""

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
from ledger.commands.money import (
    Adjust,
    CloseAccount,
    Gift,
    MoneyCommand,
    Refund,
    Reverse,
    TopUp,
    channel_of,
    wallet_of,
)

__all__ = ["APPROVABLE", "Adjust", "ApprovalPolicy", "CloseAccount", "Command", "Gift",
           "Handler", "Handles", "KeepPower", "MoneyCommand", "Refund", "Reverse", "TopUp",
           "channel_of", "command_from_approval", "handler_table", "iso", "wallet_of",
           "when"]
__all__ += ["CommandNotFound", "DeviceContext", "EnforceBalances", "IssueContext",
            "IssueDeviceCommand", "LapseKeepPower", "RecordCommandOutcome",
            "RecordGatewayReachable", "RecordGatewayUnreachable", "RecordPollFailures",
            "RecordPollSuccesses"]
__all__ += ["AddHoliday", "CutoffContext", "RemoveHoliday", "RunCutoff",
            "SetAccountCutoffPolicy", "SetMeterTimetable", "SetSiteCutoffPolicy"]
