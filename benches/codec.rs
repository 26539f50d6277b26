//! OCPP codec speed: the messages a busy site exchanges most, from text to typed value
//! and back. Target: well under 5 µs per message on one core (200 000 messages/s),
//! so that 1000+ stations cost a fraction of a core.

use ampwarden_actors::ocpp::{
    encode_call, encode_call_result, CentralCall, CentralResponse, ChargingProfileStatus, Frame,
    ImportReadings, Incoming, MeterValuesResponse, SetChargingProfileRequest,
    SetChargingProfileResponse, SetpointPurpose, StationRequest,
};
use ampwarden_actors::units::Amps;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// What a 3-phase AC station sends every 10 s while charging: current, voltage and
/// offered current per phase, energy register, power, state of charge.
const METER_VALUES_CALL: &str = r#"[2,"7f3c2a1e-5b9d-4c8a-9e21-0d4b6f8a1c3e","MeterValues",{"connectorId":1,"transactionId":1842,"meterValue":[{"timestamp":"2025-03-01T12:00:10.000Z","sampledValue":[{"value":"15.92","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","phase":"L1","location":"Outlet","unit":"A"},{"value":"16.04","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","phase":"L2","location":"Outlet","unit":"A"},{"value":"15.87","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","phase":"L3","location":"Outlet","unit":"A"},{"value":"231.4","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","phase":"L1-N","location":"Outlet","unit":"V"},{"value":"229.8","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","phase":"L2-N","location":"Outlet","unit":"V"},{"value":"230.6","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","phase":"L3-N","location":"Outlet","unit":"V"},{"value":"11021","context":"Sample.Periodic","format":"Raw","measurand":"Power.Active.Import","location":"Outlet","unit":"W"},{"value":"48213.7","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"},{"value":"16.0","context":"Sample.Periodic","format":"Raw","measurand":"Current.Offered","location":"Outlet","unit":"A"},{"value":"64","context":"Sample.Periodic","format":"Raw","measurand":"SoC","location":"EV","unit":"Percent"}]}]}]"#;

const SET_CHARGING_PROFILE_RESULT: &str = r#"[3,"cp-000123-4711",{"status":"Accepted"}]"#;

fn setpoint() -> SetChargingProfileRequest {
    SetChargingProfileRequest::current_limit(
        1,
        1001,
        1,
        SetpointPurpose::Tx {
            transaction_id: 1842,
        },
        Amps(13.37),
        3,
    )
}

fn meter_values(c: &mut Criterion) {
    let mut group = c.benchmark_group("meter_values");
    group.throughput(Throughput::Elements(1));
    // What the controller does with each one: frame and typed message in one pass,
    // readings, answer.
    group.bench_function("receive_read_answer", |b| {
        b.iter(|| {
            let Ok(Incoming::Call {
                unique_id,
                request: Ok(StationRequest::MeterValues(request)),
            }) = Incoming::<StationRequest>::parse(black_box(METER_VALUES_CALL))
            else {
                unreachable!("the bench message is valid MeterValues")
            };
            black_box(ImportReadings::from_meter_values(&request.meter_value));
            black_box(encode_call_result(&unique_id, &MeterValuesResponse {}))
        })
    });
    // The same through the raw frame first: the payload is scanned twice.
    group.bench_function("receive_read_answer_two_steps", |b| {
        b.iter(|| {
            let Ok(Frame::Call {
                unique_id,
                action,
                payload,
            }) = Frame::parse(black_box(METER_VALUES_CALL))
            else {
                unreachable!("the bench message is a valid call")
            };
            let Ok(StationRequest::MeterValues(request)) = StationRequest::parse(&action, payload)
            else {
                unreachable!("the bench message is valid MeterValues")
            };
            black_box(ImportReadings::from_meter_values(&request.meter_value));
            black_box(encode_call_result(&unique_id, &MeterValuesResponse {}))
        })
    });
    // What a simulated station does: the typed message back to text.
    let Ok(Incoming::Call {
        request: Ok(StationRequest::MeterValues(request)),
        ..
    }) = Incoming::<StationRequest>::parse(METER_VALUES_CALL)
    else {
        unreachable!("valid MeterValues")
    };
    group.bench_function("encode", |b| {
        b.iter(|| black_box(encode_call("7f3c2a1e", black_box(&request))))
    });
    group.finish();
}

fn set_charging_profile(c: &mut Criterion) {
    let mut group = c.benchmark_group("set_charging_profile");
    group.throughput(Throughput::Elements(1));
    // The controller's side of a setpoint: build and encode the call, read the answer.
    group.bench_function("build_encode_read_answer", |b| {
        b.iter(|| {
            let text = encode_call("cp-000123-4711", &setpoint());
            black_box(text);
            let Ok(Frame::CallResult { payload, .. }) =
                Frame::parse(black_box(SET_CHARGING_PROFILE_RESULT))
            else {
                unreachable!("the bench answer is a valid result")
            };
            black_box(CentralResponse::parse("SetChargingProfile", payload))
        })
    });
    // A station's side (simulator): read the call into its type, answer.
    let call = encode_call("cp-000123-4711", &setpoint());
    group.bench_function("receive_read_answer", |b| {
        b.iter(|| {
            let Ok(Incoming::Call {
                unique_id,
                request: Ok(CentralCall::SetChargingProfile(request)),
            }) = Incoming::<CentralCall>::parse(black_box(&call))
            else {
                unreachable!("a valid SetChargingProfile")
            };
            black_box(request);
            black_box(encode_call_result(
                &unique_id,
                &SetChargingProfileResponse {
                    status: ChargingProfileStatus::Accepted,
                },
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, meter_values, set_charging_profile);
criterion_main!(benches);
