"""A minimal OCPP 1.6J central system on the Python `ocpp` package (Mobility House) and
`websockets`, for comparison in the load benchmark (benches/load.rs --python).

It accepts every station at ws://127.0.0.1:PORT/ocpp/{id} (subprotocol ocpp1.6) and
answers BootNotification, Heartbeat, StatusNotification, Authorize, Start/StopTransaction
and MeterValues; it stores nothing. The `ocpp` package validates every message against
the OCPP 1.6 JSON schemas, as ampwarden does with its own types.
"""

import asyncio
import datetime
import itertools
import logging
import sys

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as BaseChargePoint
from ocpp.v16 import call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

TRANSACTION_IDS = itertools.count(1)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class ChargePoint(BaseChargePoint):
    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(
            current_time=now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self):
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status_notification(self, connector_id, error_code, status, **kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag):
        return call_result.Authorize(
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        return call_result.StartTransaction(
            transaction_id=next(TRANSACTION_IDS),
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted),
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()


async def on_connect(websocket):
    if websocket.subprotocol != "ocpp1.6":
        await websocket.close()
        return
    station_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
    try:
        await ChargePoint(station_id, websocket).start()
    except websockets.exceptions.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(
        on_connect, "127.0.0.1", port, subprotocols=["ocpp1.6"], max_size=1 << 20
    ):
        print(f"python ocpp central system on ws://127.0.0.1:{port}/ocpp", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9000))
