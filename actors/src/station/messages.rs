//! What the station actor exchanges: the session protocol with its WebSocket, the
//! snapshots and reports it sends, and the commands it takes.

use super::*;

// --- the session protocol (used by the WebSocket layer) ------------------------------

/// Text to the station, or a request to close its socket; sent to the session actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ToStation {
    Text(String),
    Close { reason: String },
}

/// A new WebSocket connection for this station; it replaces any previous one.
#[derive(Debug)]
pub struct Attach {
    pub connection: u64,
    pub session: Recipient<ToStation>,
}

/// One text message from the station's socket.
#[derive(Debug)]
pub struct FromStation {
    pub connection: u64,
    pub text: String,
}

/// The socket of `connection` closed.
#[derive(Debug)]
pub struct Detach {
    pub connection: u64,
}

/// What a WebSocket session tells its station actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SessionEvent {
    Attach(Attach),
    Frame(FromStation),
    /// A binary frame: OCPP-J is text only.
    Binary {
        connection: u64,
    },
    Detach(Detach),
}

// --- what the station actor tells others ----------------------------------------------

/// A transaction as the rest of the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransactionSnapshot {
    pub id: i32,
    pub id_tag: IdTag,
    pub vip: bool,
    pub started_at: DateTime<Utc>,
    pub energy_wh: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectorSnapshot {
    pub connector: u32,
    /// The OCPP ChargePointStatus, e.g. `Charging`, `SuspendedEVSE`.
    pub status: String,
    pub error_code: String,
    pub status_since: DateTime<Utc>,
    pub transaction: Option<TransactionSnapshot>,
    /// Current.Import per phase as last reported; `None` where nothing was reported.
    pub draw: PerPhase<Option<Amps>>,
    /// When `draw` was last reported.
    pub draw_at: Option<DateTime<Utc>>,
    /// The lowest limit acknowledged since `draw` was reported (`None`: no change since).
    pub lowest_limit_since_draw: Option<Amps>,
    /// When the station acknowledged the last change of the transaction's limit: its
    /// vehicle may be moving to it until its next report.
    pub changed_at: Option<DateTime<Utc>>,
    /// The site phases the vehicle charges on, once its reports show it (a 1-phase car
    /// on a 3-phase station); `None` while not known (all the station's phases count).
    pub phases_in_use: Option<Vec<crate::units::Phase>>,
    pub power_w: Option<f64>,
    /// The most the station may apply on this connector now: the limit in force where
    /// every answer came, else the highest value it may have taken (a profile that timed
    /// out may be in force); the station's maximum while nothing is known.
    pub limit_in_force: Amps,
    /// The highest TxProfile value of the current transaction that may be in force;
    /// `None` while the transaction runs on a default profile.
    pub tx_limit: Option<Amps>,
    /// The CPO's limit for this connector (its charging profiles, with the station-wide
    /// one), which the allocation never exceeds; `None` without one.
    pub cpo_limit: Option<Amps>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StationSnapshot {
    pub id: ChargePointId,
    pub connected: bool,
    pub booted: bool,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub connectors: Vec<ConnectorSnapshot>,
    /// The configured connectors without a transaction on which a vehicle plugged in
    /// now could draw more than 0 A before the controller hears of it (the station's
    /// default profile is not known to be 0 A: rejected, unanswered, lost in a reboot):
    /// connector and the most it could draw.
    pub idle_reserved: Vec<(u32, Amps)>,
    /// What the station reported of the OCPP security extension since the controller
    /// started (every event is also in the operator log).
    pub security: SecuritySummary,
}

/// A station's security-extension reports, as the UI and /metrics show them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SecuritySummary {
    /// SecurityEventNotifications received.
    pub events: u64,
    /// Of them critical by the extension's list.
    pub critical: u64,
    /// The latest critical one: its type, the station's time and its techInfo.
    pub last_critical: Option<(String, DateTime<Utc>, Option<String>)>,
    /// The latest SignedFirmwareStatusNotification status (and requestId).
    pub signed_firmware: Option<(String, Option<i32>)>,
    /// The latest LogStatusNotification status (and requestId).
    pub log_upload: Option<(String, Option<i32>)>,
}

/// Sent to the supervisor whenever something it allocates on changes.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct StationReport {
    /// Where to send setpoints and commands.
    pub addr: Addr<StationActor>,
    pub snapshot: StationSnapshot,
    pub why: ReportReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportReason {
    Connected,
    Disconnected,
    Booted,
    Status,
    TransactionStarted,
    TransactionStopped,
    MeterValues,
    LimitChanged,
}

// --- commands ------------------------------------------------------------------------

/// Why one of our CALLs did not give an answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallFailure {
    #[error("the station is not connected")]
    NotConnected,
    #[error("the connection closed before the station answered")]
    ConnectionLost,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the station answered with an error: {0}")]
    Refused(CallError),
    #[error("the station's answer is not valid: {0}")]
    BadAnswer(CallError),
    #[error("the station actor stopped")]
    Stopped,
}

/// Sends one central→station request and waits for its typed answer.
pub struct Call<R>(pub R);

impl<R> Message for Call<R>
where
    R: Request + 'static,
    R::Response: Send + 'static,
{
    type Result = Result<R::Response, CallFailure>;
}

/// A snapshot of the station, for the API and UI.
#[derive(Message)]
#[rtype(result = "StationSnapshot")]
pub struct GetSnapshot;

/// An open transaction's record as of its last meter reading (the store's copy is
/// written at most every minute); `None` when this station holds nothing newer.
#[derive(Message)]
#[rtype(result = "Option<crate::store::TransactionRecord>")]
pub struct GetLiveRecord(pub i32);

/// Which profile a limit is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPurpose {
    /// TxDefaultProfile on a connector (0 = the whole station).
    Default,
    /// TxProfile of the given transaction.
    Transaction(i32),
}

/// Sets the limit of a connector with SetChargingProfile and waits for the answer.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<LimitOutcome, CallFailure>")]
pub struct ApplyLimit {
    pub connector: u32,
    pub limit: Amps,
    pub purpose: LimitPurpose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    Accepted,
    Rejected,
}

/// Closes the station's socket (controller shutdown); the actor stays.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession;

/// The station's configuration changed (zone, max current, …).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateStationConfig(pub StationConfig);

/// The CPO uplink of this station: told when the journal grew (see `Store::journal_append`).
/// `transaction`: what grew was a StartTransaction or StopTransaction (which TxProfile of
/// the CPO applies changes).
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct UplinkWake {
    pub transaction: bool,
}

/// Asks the CPO about an id tag (`auth.mode = "uplink"`): its answer, or `None` when the
/// CPO cannot be asked now (the offline policy decides).
#[derive(Clone, Debug, Message)]
#[rtype(result = "Option<crate::ocpp::IdTagInfo>")]
pub struct UplinkAuthorize(pub crate::units::IdTag);

/// Passes a DataTransfer of the station (its payload) to the CPO: the CPO's answer
/// payload, or `None` when the CPO cannot be asked now or gave none.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Option<serde_json::Value>")]
pub struct UplinkDataTransfer(pub serde_json::Value);

/// The station's CPO uplink, as the station actor sees it.
#[derive(Clone)]
pub struct UplinkHandle {
    /// Told when the journal grew.
    pub wake: Recipient<UplinkWake>,
    pub authorize: Recipient<UplinkAuthorize>,
    pub data_transfer: Recipient<UplinkDataTransfer>,
    /// Connected and accepted by the CPO now.
    pub online: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl UplinkHandle {
    pub fn online(&self) -> bool {
        self.online.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Attaches the station's CPO uplink.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachUplink(pub UplinkHandle);

/// The CPO's limits for the station's connectors (connector 0: the whole station), as its
/// charging profiles compose now; an empty map lifts them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetCpoLimits(pub std::collections::BTreeMap<u32, Amps>);

/// Adds a note to a transaction's record (e.g. the CPO refused it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoteTransaction {
    pub id: i32,
    pub note: String,
}

/// The CPO asked for MeterValues this often (seconds): what goes upstream follows it,
/// the station keeps reporting to the site at the site's interval.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct SetUplinkMeterInterval(pub u32);
