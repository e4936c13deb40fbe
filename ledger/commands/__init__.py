"""Commands as data: what a route, a task or an approval asks the ledger to do.

``base`` says what a command is and how the ledger finds the service that carries it out;
each feature's commands live beside it (``money``, ``devices``, ...); ``approvals`` says
which of them an approval may hold and which need a second person.
"""

from ledger.commands.approvals import APPROVABLE, ApprovalPolicy, command_from_approval
from ledger.commands.base import Command, Handler, Handles, handler_table, iso, when
from ledger.commands.devices import KeepPower
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
    Refund,
    Reverse,
    TopUp,
    channel_of,
    wallet_of,
)
from ledger.commands.periods import ClosePeriod, PeriodContext, PeriodNotOver

__all__ = ["APPROVABLE", "Adjust", "ApprovalPolicy", "CloseAccount", "Command", "Gift",
           "Handler", "Handles", "KeepPower", "MoneyCommand", "Refund", "Reverse", "TopUp",
           "channel_of", "command_from_approval", "handler_table", "iso", "wallet_of",
           "when"]
__all__ += ["AddBuilding", "AddTariffVersion", "AddUnit", "AssignTariff",
            "AssignmentContext", "BindMeter", "ChangeContext", "ChargeReading",
            "CreateContext", "CreateSite", "CreateTariff", "GatewayContext", "MeterContext",
            "ReadingContext", "ReadingInput", "RegisterGateway", "RegisterMeter",
            "ReplaceMeter", "TakeReadings", "UnbindMeter"]
__all__ += ["ClosePeriod", "PeriodContext", "PeriodNotOver"]
