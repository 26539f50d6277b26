//! The actor that announces tariff period changes (peak, off-peak…) and their EV cap and
//! price, from a pure [`TariffCalendar`]. It sleeps until the next boundary, wakes, and
//! re-computes from the clock, so a clock that jumps is caught at the next wake-up (at
//! the latest after `recheck`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::tariff::{ActivePeriod, TariffCalendar};

/// The time source: the system clock in production, a hand-driven one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// What is in force now: sent at start and whenever it changes.
#[derive(Clone, Debug, PartialEq, Message)]
#[rtype(result = "()")]
pub struct TariffPeriodChanged {
    pub period: Option<ActivePeriod>,
    /// Fraction of the zones' EV budget allowed (1.0 outside every period).
    pub cap_fraction: f64,
    /// Energy price for transaction costs; `None` outside every period.
    pub price_per_kwh: Option<f64>,
}

/// Asks what is in force now and when it next may change.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "TariffNow")]
pub struct GetTariff;

#[derive(Clone, Debug, PartialEq, MessageResponse)]
pub struct TariffNow {
    pub period: Option<ActivePeriod>,
    pub cap_fraction: f64,
    pub price_per_kwh: Option<f64>,
    pub next_boundary: Option<DateTime<Utc>>,
}

/// Replaces the calendar (live configuration change); the new state is announced at
/// once if it differs.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ReplaceTariffs(pub TariffCalendar);

/// Announces tariff periods to one recipient (the zone supervisor).
pub struct TariffCalendarActor {
    calendar: TariffCalendar,
    recipient: Recipient<TariffPeriodChanged>,
    clock: Clock,
    recheck: Duration,
    last_sent: Option<TariffPeriodChanged>,
    timer: Option<SpawnHandle>,
}

impl TariffCalendarActor {
    /// The longest the actor sleeps without looking at the clock.
    pub const RECHECK: Duration = Duration::from_secs(60);

    pub fn new(
        calendar: TariffCalendar,
        recipient: Recipient<TariffPeriodChanged>,
        clock: Clock,
    ) -> TariffCalendarActor {
        TariffCalendarActor {
            calendar,
            recipient,
            clock,
            recheck: TariffCalendarActor::RECHECK,
            last_sent: None,
            timer: None,
        }
    }

    /// Looks at the clock at least this often (default [`Self::RECHECK`]).
    pub fn with_recheck(mut self, every: Duration) -> TariffCalendarActor {
        self.recheck = every;
        self
    }

    fn state_at(&self, now: DateTime<Utc>) -> TariffPeriodChanged {
        let period = self.calendar.period_at(now);
        TariffPeriodChanged {
            cap_fraction: period.as_ref().map_or(1.0, |p| p.ev_cap_pct / 100.0),
            price_per_kwh: period.as_ref().map(|p| p.price_per_kwh),
            period,
        }
    }

    fn announce_if_changed(&mut self) {
        let state = self.state_at((self.clock)());
        if self.last_sent.as_ref() == Some(&state) {
            return;
        }
        tracing::info!(
            period = state.period.as_ref().map_or("none", |p| p.name.as_str()),
            cap_fraction = state.cap_fraction,
            price_per_kwh = ?state.price_per_kwh,
            "tariff period in force"
        );
        self.recipient.do_send(state.clone());
        self.last_sent = Some(state);
    }

    /// Sleeps until the next boundary (or `recheck`, whichever is sooner), then announces
    /// and re-arms.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let now = (self.clock)();
        let until_boundary = self
            .calendar
            .next_boundary(now)
            .map(|boundary| (boundary - now).to_std().unwrap_or(Duration::ZERO));
        let delay = until_boundary.map_or(self.recheck, |d| d.min(self.recheck));
        self.timer = Some(ctx.run_later(delay, |actor, ctx| {
            actor.timer = None;
            actor.announce_if_changed();
            actor.arm(ctx);
        }));
    }
}

impl Actor for TariffCalendarActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.announce_if_changed();
        self.arm(ctx);
    }
}

impl Handler<GetTariff> for TariffCalendarActor {
    type Result = TariffNow;

    fn handle(&mut self, _: GetTariff, _: &mut Self::Context) -> TariffNow {
        let now = (self.clock)();
        let state = self.state_at(now);
        TariffNow {
            period: state.period,
            cap_fraction: state.cap_fraction,
            price_per_kwh: state.price_per_kwh,
            next_boundary: self.calendar.next_boundary(now),
        }
    }
}

impl Handler<ReplaceTariffs> for TariffCalendarActor {
    type Result = ();

    fn handle(&mut self, ReplaceTariffs(calendar): ReplaceTariffs, ctx: &mut Self::Context) {
        tracing::info!("tariff calendar replaced");
        self.calendar = calendar;
        self.announce_if_changed();
        self.arm(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Mutex;
    use std::time::Instant;

    use chrono::{NaiveDateTime, TimeDelta, TimeZone, Weekday};

    use super::*;
    use crate::config::{ClockTime, Day, TariffConfig};

    #[derive(Clone, Default)]
    struct Inbox(Arc<Mutex<Vec<TariffPeriodChanged>>>);

    impl Inbox {
        fn all(&self) -> Vec<TariffPeriodChanged> {
            self.0.lock().expect("inbox lock").clone()
        }
    }

    impl Actor for Inbox {
        type Context = Context<Self>;
    }

    impl Handler<TariffPeriodChanged> for Inbox {
        type Result = ();
        fn handle(&mut self, message: TariffPeriodChanged, _: &mut Context<Self>) {
            self.0.lock().expect("inbox lock").push(message);
        }
    }

    async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
        for _ in 0..1000 {
            if condition().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gave up waiting until {what}");
    }

    fn paris(text: &str) -> DateTime<Utc> {
        let naive =
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("a valid instant");
        chrono_tz::Europe::Paris
            .from_local_datetime(&naive)
            .single()
            .expect("unambiguous")
            .with_timezone(&Utc)
    }

    fn peak_calendar() -> TariffCalendar {
        let peak = TariffConfig {
            name: "peak".into(),
            days: vec![Day(Weekday::Mon)],
            from: ClockTime { minutes: 17 * 60 },
            to: ClockTime { minutes: 21 * 60 },
            ev_cap_pct: 30.0,
            price_per_kwh: 0.32,
        };
        TariffCalendar::new(&[peak], "Europe/Paris").expect("a valid calendar")
    }

    fn peak() -> TariffPeriodChanged {
        TariffPeriodChanged {
            period: Some(ActivePeriod {
                name: "peak".into(),
                ev_cap_pct: 30.0,
                price_per_kwh: 0.32,
            }),
            cap_fraction: 0.3,
            price_per_kwh: Some(0.32),
        }
    }

    fn off_peak() -> TariffPeriodChanged {
        TariffPeriodChanged {
            period: None,
            cap_fraction: 1.0,
            price_per_kwh: None,
        }
    }

    /// A clock that reads `start` when first read, then runs at real speed: however late
    /// the actor starts, it first sees `start`.
    fn running_from(start: DateTime<Utc>) -> Clock {
        let origin = std::sync::OnceLock::new();
        Arc::new(move || {
            let elapsed = origin.get_or_init(Instant::now).elapsed();
            start + TimeDelta::from_std(elapsed).expect("a short test")
        })
    }

    /// A clock that stands still until the test moves it.
    fn settable(start: DateTime<Utc>) -> (Clock, Arc<Mutex<DateTime<Utc>>>) {
        let now = Arc::new(Mutex::new(start));
        let read = Arc::clone(&now);
        (Arc::new(move || *read.lock().expect("clock lock")), now)
    }

    #[actix::test]
    async fn announces_at_start_and_at_the_boundary() {
        // 80 ms before a Monday 17:00 in Paris, on a clock that runs at real speed.
        let inbox = Inbox::default();
        let clock = running_from(paris("2026-03-02 16:59:59.920"));
        TariffCalendarActor::new(peak_calendar(), inbox.clone().start().recipient(), clock).start();
        wait_until("the start and the 17:00 announcements", || {
            let n = inbox.all().len();
            async move { n >= 2 }
        })
        .await;
        assert_eq!(inbox.all()[..2], [off_peak(), peak()]);
    }

    #[actix::test]
    async fn a_clock_jump_is_caught_at_the_next_recheck() {
        let inbox = Inbox::default();
        let (clock, now) = settable(paris("2026-03-02 12:00:00"));
        let calendar =
            TariffCalendarActor::new(peak_calendar(), inbox.clone().start().recipient(), clock)
                .with_recheck(Duration::from_millis(20))
                .start();
        wait_until("the start announcement", || {
            let n = inbox.all().len();
            async move { n >= 1 }
        })
        .await;
        *now.lock().expect("clock lock") = paris("2026-03-02 18:30:00");
        wait_until("the peak is announced after the jump", || {
            let n = inbox.all().len();
            async move { n >= 2 }
        })
        .await;
        assert_eq!(inbox.all(), [off_peak(), peak()]);
        let tariff = calendar
            .send(GetTariff)
            .await
            .expect("the calendar answers");
        assert_eq!(tariff.period, peak().period);
        assert_eq!(tariff.cap_fraction, 0.3);
        assert_eq!(tariff.price_per_kwh, Some(0.32));
        assert_eq!(tariff.next_boundary, Some(paris("2026-03-02 21:00:00")));
    }

    #[actix::test]
    async fn nothing_is_announced_while_nothing_changes() {
        let inbox = Inbox::default();
        let (clock, _now) = settable(paris("2026-03-02 12:00:00"));
        let calendar =
            TariffCalendarActor::new(peak_calendar(), inbox.clone().start().recipient(), clock)
                .with_recheck(Duration::from_millis(5))
                .start();
        // Many rechecks go by; a query is answered after them (same mailbox order).
        tokio::time::sleep(Duration::from_millis(100)).await;
        calendar
            .send(GetTariff)
            .await
            .expect("the calendar answers");
        assert_eq!(inbox.all(), [off_peak()]);
    }

    #[actix::test]
    async fn replaced_tariffs_are_announced_at_once() {
        let inbox = Inbox::default();
        let (clock, _now) = settable(paris("2026-03-02 18:00:00"));
        let empty = TariffCalendar::empty(chrono_tz::Europe::Paris);
        let calendar =
            TariffCalendarActor::new(empty, inbox.clone().start().recipient(), clock).start();
        calendar
            .send(ReplaceTariffs(peak_calendar()))
            .await
            .expect("the calendar answers");
        wait_until("the new period is announced", || {
            let n = inbox.all().len();
            async move { n >= 2 }
        })
        .await;
        assert_eq!(inbox.all(), [off_peak(), peak()]);
    }
}

/// The energy price in force, shared by the supervisor (which sets it at each tariff
/// change) and the station actors (which price transactions with it).
#[derive(Clone, Debug, Default)]
pub struct LivePrice(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl LivePrice {
    const NONE: u64 = u64::MAX;

    pub fn new() -> LivePrice {
        LivePrice(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
            Self::NONE,
        )))
    }

    pub fn set(&self, price_per_kwh: Option<f64>) {
        let bits = price_per_kwh
            .filter(|p| p.is_finite())
            .map_or(Self::NONE, f64::to_bits);
        self.0.store(bits, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<f64> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::NONE => None,
            bits => Some(f64::from_bits(bits)),
        }
    }
}
