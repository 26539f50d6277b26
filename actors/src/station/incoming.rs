//! The station's CALLs: parsed, checked and answered.

use super::*;

impl StationActor {
    // --- incoming frames ----------------------------------------------------------------

    pub(super) fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match Incoming::<StationRequest>::parse(text) {
            Err(e) => {
                tracing::warn!(station = %self.id, error = %e.error, "malformed frame");
                match e.answer() {
                    Some(answer) => self.send_text(answer),
                    None => {
                        if let Some(id) = e.unique_id.clone() {
                            self.resolve(&id, Err(CallFailure::BadAnswer(e.error)), ctx);
                        }
                    }
                }
            }
            Ok(Incoming::Call { unique_id, request }) => match request {
                Ok(request) => self.on_request(&unique_id, request, ctx),
                Err(error) => {
                    tracing::warn!(station = %self.id, %error, "refused call");
                    self.send_text(encode_call_error(&unique_id, &error));
                }
            },
            Ok(Incoming::CallResult { unique_id, payload }) => {
                self.resolve(&unique_id, Ok(payload.get().to_owned()), ctx);
            }
            Ok(Incoming::CallError {
                unique_id, error, ..
            }) => {
                self.resolve(&unique_id, Err(CallFailure::Refused(error)), ctx);
            }
        }
    }

    /// Answers a station's CALL. The answer goes out before anything it triggers
    /// (e.g. a TxProfile is only sent after the StartTransaction answer).
    pub(super) fn on_request(
        &mut self,
        uid: &str,
        request: StationRequest,
        ctx: &mut Context<Self>,
    ) {
        self.touch();
        if let Some(n) = named_connector(&request).filter(|&n| n > self.station.connectors) {
            let message = format!(
                "connectorId {n} is above the {} connector(s) configured for this station",
                self.station.connectors
            );
            if !self.connector_refusal_logged {
                self.connector_refusal_logged = true;
                tracing::warn!(station = %self.id, connector = n, "{message}: refused (set its `connectors`)");
                self.log(
                    LogLevel::Warn,
                    format!("{message}: refused; if the station has more, set its connectors"),
                );
            }
            let error = CallError::new(ErrorCode::PropertyConstraintViolation, message);
            self.send_text(encode_call_error(uid, &error));
            return;
        }
        match request {
            StationRequest::BootNotification(boot) => {
                self.on_boot(&boot);
                if self.deps.config.get().uplink.is_some() {
                    // Replayed on every upstream connection, not journaled.
                    let payload = serde_json::to_value(&boot).unwrap_or_default();
                    if let Err(e) = self.deps.store.set_uplink_boot(&self.id, &payload) {
                        tracing::error!(station = %self.id, error = %e, "cannot keep the boot for the CPO");
                    }
                    if let Some(u) = &self.uplink {
                        u.wake.do_send(UplinkWake { transaction: false });
                    }
                }
                let interval = self.deps.config.get().server.heartbeat_interval_s;
                self.send_text(encode_call_result(
                    uid,
                    &BootNotificationResponse {
                        current_time: Utc::now(),
                        interval,
                        status: RegistrationStatus::Accepted,
                    },
                ));
                self.booted = true;
                // A station that restarts may have lost its profiles or kept them:
                // nothing is known in force until it accepts the safe default again,
                // and what it may have kept stays reserved.
                self.limits.rebooted();
                self.send_safe_default(ctx);
                self.configure_for_control(ctx);
                self.report(ReportReason::Booted);
            }
            StationRequest::Heartbeat(_) => {
                self.send_text(encode_call_result(
                    uid,
                    &HeartbeatResponse {
                        current_time: Utc::now(),
                    },
                ));
            }
            StationRequest::StatusNotification(status) => {
                self.on_status(&status);
                self.upstream_request(&status, None);
                self.send_text(encode_call_result(uid, &StatusNotificationResponse {}));
                self.report(ReportReason::Status);
            }
            StationRequest::Authorize(req) => {
                let tag = IdTag::new(req.id_tag.as_str());
                let config = self.deps.config.get();
                if let (crate::config::AuthMode::Uplink, Some(u)) = (config.auth.mode, &self.uplink)
                {
                    // The CPO decides while it can be asked; its answer is cached.
                    let ask = u.authorize.send(UplinkAuthorize(tag.clone()));
                    let wait = Duration::from_secs(u64::from(
                        config.uplink.as_ref().map_or(5, |u| u.auth_timeout_s),
                    ));
                    let uid = uid.to_owned();
                    async move { tokio::time::timeout(wait, ask).await }
                        .into_actor(self)
                        .map(move |answer, act, _| {
                            let info = match answer {
                                Ok(Ok(Some(info))) => info,
                                _ => id_tag_info(&act.authorize_offline(&tag)),
                            };
                            act.send_text(encode_call_result(
                                &uid,
                                &AuthorizeResponse { id_tag_info: info },
                            ));
                        })
                        .spawn(ctx);
                    return;
                }
                let verdict = self.authorize(&tag);
                self.send_text(encode_call_result(
                    uid,
                    &AuthorizeResponse {
                        id_tag_info: id_tag_info(&verdict),
                    },
                ));
            }
            StationRequest::StartTransaction(start) => match self.on_start(&start) {
                Ok(answer) => {
                    self.send_text(encode_call_result(uid, &answer));
                    self.report(ReportReason::TransactionStarted);
                }
                Err(error) => self.send_text(encode_call_error(uid, &error)),
            },
            StationRequest::StopTransaction(stop) => match self.on_stop(&stop) {
                Ok(answer) => {
                    self.send_text(encode_call_result(uid, &answer));
                    self.report(ReportReason::TransactionStopped);
                }
                Err(error) => self.send_text(encode_call_error(uid, &error)),
            },
            StationRequest::MeterValues(values) => {
                self.on_meter_values(&values);
                self.send_text(encode_call_result(uid, &MeterValuesResponse {}));
                self.report(ReportReason::MeterValues);
            }
            StationRequest::DataTransfer(req) => {
                let config = self.deps.config.get();
                let payload = serde_json::to_value(&req).ok();
                if let (Some(u), Some(up), Some(payload)) =
                    (&self.uplink, config.uplink.as_ref(), payload)
                {
                    // Vendor data is for the backend: the CPO answers it, live (an answer
                    // cannot wait for a backlog to drain, so it is not journalled).
                    let ask = u.data_transfer.send(UplinkDataTransfer(payload));
                    let wait = Duration::from_secs(u64::from(up.call_timeout_s));
                    let uid = uid.to_owned();
                    async move { tokio::time::timeout(wait, ask).await }
                        .into_actor(self)
                        .map(move |answer, act, _| {
                            let answer = match answer {
                                Ok(Ok(Some(v))) => serde_json::from_value::<DataTransferResponse>(v)
                                    .map_err(|e| format!("the CPO's answer is not a DataTransfer.conf: {e}")),
                                _ => Err("the CPO cannot be asked now".to_owned()),
                            };
                            let answer = answer.unwrap_or_else(|why| {
                                tracing::info!(station = %act.id, vendor = %req.vendor_id, %why, "DataTransfer answered UnknownVendorId");
                                unknown_vendor()
                            });
                            act.send_text(encode_call_result(&uid, &answer));
                        })
                        .spawn(ctx);
                    return;
                }
                tracing::info!(station = %self.id, vendor = %req.vendor_id, "DataTransfer from an unknown vendor");
                self.send_text(encode_call_result(uid, &unknown_vendor()));
            }
            StationRequest::DiagnosticsStatusNotification(n) => {
                self.upstream_request(&n, None);
                self.log(LogLevel::Info, format!("diagnostics upload: {}", n.status));
                self.send_text(encode_call_result(
                    uid,
                    &DiagnosticsStatusNotificationResponse {},
                ));
            }
            StationRequest::SecurityEventNotification(n) => {
                self.on_security_event(&n);
                self.send_text(encode_call_result(
                    uid,
                    &SecurityEventNotificationResponse {},
                ));
            }
            StationRequest::SignedFirmwareStatusNotification(n) => {
                let request = n
                    .request_id
                    .map(|r| format!(" (request {r})"))
                    .unwrap_or_default();
                let level = match n.status {
                    SignedFirmwareStatus::InvalidSignature
                    | SignedFirmwareStatus::InstallVerificationFailed
                    | SignedFirmwareStatus::DownloadFailed
                    | SignedFirmwareStatus::InstallationFailed => LogLevel::Warn,
                    _ => LogLevel::Info,
                };
                self.log(
                    level,
                    format!("signed firmware update: {}{request}", n.status),
                );
                self.security.signed_firmware = Some((n.status.to_string(), n.request_id));
                self.send_text(encode_call_result(
                    uid,
                    &SignedFirmwareStatusNotificationResponse {},
                ));
            }
            StationRequest::LogStatusNotification(n) => {
                let request = n
                    .request_id
                    .map(|r| format!(" (request {r})"))
                    .unwrap_or_default();
                self.log(LogLevel::Info, format!("log upload: {}{request}", n.status));
                self.security.log_upload = Some((n.status.to_string(), n.request_id));
                self.send_text(encode_call_result(uid, &LogStatusNotificationResponse {}));
            }
            StationRequest::FirmwareStatusNotification(n) => {
                self.upstream_request(&n, None);
                self.log(LogLevel::Info, format!("firmware update: {}", n.status));
                self.send_text(encode_call_result(
                    uid,
                    &FirmwareStatusNotificationResponse {},
                ));
            }
        }
    }

    /// A security event: in the operator log (critical ones as warnings) and counted.
    fn on_security_event(&mut self, n: &SecurityEventNotificationRequest) {
        let kind = n.kind.as_str();
        let critical = is_critical_security_event(kind);
        let info = n
            .tech_info
            .as_ref()
            .map(|t| format!(": {}", t.as_str()))
            .unwrap_or_default();
        let level = if critical {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        self.log(
            level,
            format!(
                "security event{} {kind} at {}{info}",
                if critical { " (critical)" } else { "" },
                n.timestamp.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        );
        self.security.events += 1;
        if critical {
            self.security.critical += 1;
            self.security.last_critical = Some((
                kind.to_owned(),
                n.timestamp,
                n.tech_info.as_ref().map(|t| t.as_str().to_owned()),
            ));
            self.report(ReportReason::Status);
        }
    }

    /// Keeps `last_seen` current in memory; it is written with the next record update.
    pub(super) fn touch(&mut self) {
        if let Some(r) = &mut self.record {
            r.last_seen = Utc::now();
        }
    }

    pub(super) fn on_boot(&mut self, boot: &BootNotificationRequest) {
        let now = Utc::now();
        let mut record = self.record.clone().unwrap_or_else(|| {
            StationRecord::new(self.id.clone(), Some(self.station.zone.clone()), now)
        });
        record.vendor = Some(boot.charge_point_vendor.to_string());
        record.model = Some(boot.charge_point_model.to_string());
        record.serial = boot
            .charge_point_serial_number
            .as_ref()
            .map(ToString::to_string);
        record.firmware = boot.firmware_version.as_ref().map(ToString::to_string);
        record.last_seen = now;
        if let Err(e) = self.deps.store.put_station(&record) {
            tracing::error!(station = %self.id, error = %e, "cannot store the station's boot data");
        }
        tracing::info!(station = %self.id, vendor = %boot.charge_point_vendor, model = %boot.charge_point_model, "boot accepted");
        self.record = Some(record);
    }

    /// Asks the station to report what the control loop needs, and reads back what it took.
    pub(super) fn configure_for_control(&mut self, ctx: &mut Context<Self>) {
        let config = self.deps.config.get();
        let settings = [
            (
                "MeterValuesSampledData",
                "Current.Import,Energy.Active.Import.Register,Power.Active.Import".to_owned(),
            ),
            (
                "MeterValueSampleInterval",
                config.control.meter_values_interval_s.to_string(),
            ),
            (
                "HeartbeatInterval",
                config.server.heartbeat_interval_s.to_string(),
            ),
        ];
        for (key, value) in settings {
            let request = ChangeConfigurationRequest::new(key, &value)
                .expect("our configuration keys and values fit OCPP's CiString50/500");
            let id = self.id.clone();
            let rx = self.enqueue(&request, ctx);
            ctx.spawn(
                async move {
                    match answer::<ChangeConfigurationRequest>(rx).await {
                        Ok(r) => tracing::debug!(station = %id, key, status = %r.status, "configuration key set"),
                        Err(e) => tracing::warn!(station = %id, key, error = %e, "cannot set configuration key"),
                    }
                }
                .into_actor(self),
            );
        }
        let keys = ["MeterValuesSampledData", "MeterValueSampleInterval"]
            .into_iter()
            .map(|k| CiString50::new(k).expect("our configuration keys fit CiString50"))
            .collect();
        let rx = self.enqueue(&GetConfigurationRequest { key: keys }, ctx);
        let id = self.id.clone();
        ctx.spawn(
            async move {
                match answer::<GetConfigurationRequest>(rx).await {
                    Ok(r) => {
                        for kv in r.configuration_key {
                            tracing::info!(station = %id, key = %kv.key, value = ?kv.value.as_deref(), "station configuration");
                        }
                    }
                    Err(e) => tracing::warn!(station = %id, error = %e, "cannot read the station's configuration"),
                }
            }
            .into_actor(self),
        );
    }

    pub(super) fn on_status(&mut self, status: &StatusNotificationRequest) {
        let at = status.timestamp.unwrap_or_else(Utc::now);
        if status.connector_id == 0 {
            tracing::info!(station = %self.id, status = %status.status, error = %status.error_code, "station status");
            return;
        }
        let c = self.connector(status.connector_id);
        let new_status = status.status.as_str();
        if c.status != new_status {
            c.status_since = at;
            c.status = new_status.to_owned();
        }
        c.error_code = status.error_code.as_str().to_owned();
        if status.error_code.as_str() != "NoError" {
            let message = format!(
                "connector {} fault {} ({})",
                status.connector_id,
                status.error_code,
                status.info.as_ref().map(|i| i.as_str()).unwrap_or("")
            );
            self.log(LogLevel::Warn, message);
        }
    }

    pub(super) fn authorize(&self, tag: &IdTag) -> Authorization {
        let config = self.deps.config.get();
        let stored = self.deps.store.badge(tag).unwrap_or_else(|e| {
            tracing::error!(station = %self.id, error = %e, "cannot read badges");
            None
        });
        if config.auth.mode == crate::config::AuthMode::Uplink {
            let online = self.uplink.as_ref().is_some_and(UplinkHandle::online);
            if !online {
                return self.authorize_offline(tag);
            }
            // Online: the CPO's last answer (an Authorize just before, as stations do);
            // without one the transaction starts, and the CPO's answer to its
            // StartTransaction decides (`uplink.rejected_start`).
            let cached = self.deps.store.cached_authorization(tag).unwrap_or_else(|e| {
                tracing::error!(station = %self.id, error = %e, "cannot read the authorisation cache");
                None
            });
            let vip = stored.as_ref().is_some_and(|b| b.vip);
            return match cached {
                Some(info) => crate::authorization::from_cpo(&info, vip, Utc::now()),
                None => Authorization::accepted(vip),
            };
        }
        authorize(
            config.auth.mode,
            tag,
            stored.as_ref(),
            &config.badges,
            Utc::now(),
        )
    }
}

impl StationActor {
    /// `auth.mode = "uplink"` while the CPO cannot be asked: `auth.offline` decides.
    pub(super) fn authorize_offline(&self, tag: &IdTag) -> Authorization {
        let config = self.deps.config.get();
        let stored = self.deps.store.badge(tag).unwrap_or_else(|e| {
            tracing::error!(station = %self.id, error = %e, "cannot read badges");
            None
        });
        let cached = || {
            self.deps.store.cached_authorization(tag).unwrap_or_else(|e| {
                tracing::error!(station = %self.id, error = %e, "cannot read the authorisation cache");
                None
            })
        };
        crate::authorization::offline(
            config.auth.offline,
            tag,
            stored.as_ref(),
            &config.badges,
            cached,
            Utc::now(),
        )
    }
}

/// The connector a station's message is about, if it names one.
pub(super) fn named_connector(request: &StationRequest) -> Option<u32> {
    match request {
        StationRequest::StatusNotification(s) => Some(s.connector_id),
        StationRequest::StartTransaction(s) => Some(s.connector_id.get()),
        StationRequest::MeterValues(m) => Some(m.connector_id),
        _ => None,
    }
}
pub(super) fn id_tag_info(a: &Authorization) -> IdTagInfo {
    let status = match a.verdict {
        Verdict::Accepted => AuthorizationStatus::Accepted,
        Verdict::Blocked => AuthorizationStatus::Blocked,
        Verdict::Expired => AuthorizationStatus::Expired,
        Verdict::Invalid => AuthorizationStatus::Invalid,
        Verdict::ConcurrentTx => AuthorizationStatus::ConcurrentTx,
    };
    IdTagInfo {
        expiry_date: a.expires,
        parent_id_tag: None,
        status,
    }
}

/// The answer to vendor data no one here (or upstream) knows.
fn unknown_vendor() -> DataTransferResponse {
    DataTransferResponse {
        status: DataTransferStatus::UnknownVendorId,
        data: None,
    }
}
