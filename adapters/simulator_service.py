"""``prepaid simulate``: the simulator as its own process, with an HTTP control API.

Control API (JSON, on ``--control-port``):
    GET  /layout                  gateways (protocol, connect, host, port or registration id)
                                  and their meters (number, address)
    GET  /meters/{meter_no}       registers of one meter, in plain values
    POST /meters/{meter_no}       {"offline", "lose_acks", "slow_s", "power_w", "energy_wh"}
    POST /gateways/{index}        {"offline": true|false}
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

from adapters.simulator import Simulation, SimulationConfig

log = logging.getLogger(__name__)


class MeterFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offline: bool | None = None
    lose_acks: int | None = None
    slow_s: float | None = None
    power_w: int | None = None
    energy_wh: int | None = None


class GatewayFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offline: bool


def control_app(simulation: Simulation) -> FastAPI:
    app = FastAPI(title="Meter simulator control")

    @app.get("/layout")
    def layout() -> list[dict]:
        return simulation.layout()

    @app.get("/meters/{meter_no}")
    def meter(meter_no: str) -> dict:
        if meter_no not in simulation.meters:
            raise HTTPException(404, "no such meter")
        return simulation.state(meter_no)

    @app.post("/meters/{meter_no}")
    def meter_faults(meter_no: str, body: MeterFaults) -> dict:
        if meter_no not in simulation.meters:
            raise HTTPException(404, "no such meter")
        target = simulation.meters[meter_no]
        if body.power_w is not None:
            simulation.set_power(meter_no, body.power_w)
        for name in ("offline", "lose_acks", "slow_s", "energy_wh"):
            value = getattr(body, name)
            if value is not None:
                setattr(target, name, value)
        return simulation.state(meter_no)

    @app.post("/gateways/{index}")
    async def gateway_faults(index: int, body: GatewayFaults) -> dict:
        if not 0 <= index < len(simulation.gateways) + len(simulation.serial):
            raise HTTPException(404, "no such gateway")
        await simulation.set_gateway_offline(index, body.offline)
        return {"gateway": index, "offline": body.offline}

    return app


async def serve(config: SimulationConfig, master_key: bytes, control_port: int | None,
                layout_file: str | None) -> None:
    from adapters.progress import progress

    with progress("preparing meters", config.meters) as step:
        simulation = Simulation(config, master_key, step=step)
    with progress("starting gateways", len(simulation.gateways)) as step:
        await simulation.start(step=step)
    if layout_file:
        Path(layout_file).parent.mkdir(parents=True, exist_ok=True)
        Path(layout_file).write_text(json.dumps(simulation.layout()))
    last_port = config.port_base + len(simulation.gateways) - 1
    print(f"simulating {len(simulation.meters)} meters behind {len(simulation.gateways)} "
          f"gateways on {config.host}:{config.port_base}..{last_port} ({config.baud} baud)",
          flush=True)
    if simulation.serial:
        print(f"  and {config.dlt645_gateways} DL/T 645 and {config.rtu_gateways} Modbus RTU "
              f"serial servers on the next ports, {config.dtus} DL/T 645 DTUs calling "
              f"{config.dtu_target}", flush=True)
    try:
        if control_port:
            server = uvicorn.Server(uvicorn.Config(control_app(simulation), host=config.host,
                                                   port=control_port, log_level="warning"))
            print(f"control API on http://{config.host}:{control_port}", flush=True)
            await server.serve()
        else:
            await asyncio.Event().wait()
    finally:
        await simulation.stop()
