//! Time-of-use tariffs: which period is in force at an instant, when the next change
//! happens, how much of the EV budget it allows and what energy costs. Pure: instants in,
//! periods out.
//!
//! Periods are written in the site's local time. The rules, in one place:
//! * a period runs on its days from `from` to `to`; a `to` at or before `from` runs past
//!   midnight and belongs to the day it starts; `24:00` is the end of the day;
//! * a boundary is the first instant at which the site's clock shows that time or later:
//!   in a spring-forward gap it is the end of the gap, in a fall-back overlap the first
//!   of the two occurrences;
//! * when periods overlap, the lowest cap applies, with the price of that period (the
//!   first listed wins a tie).

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::TariffConfig;

/// A tariff period in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivePeriod {
    pub name: String,
    /// EV budget cap, in percent of what the zones allow.
    pub ev_cap_pct: f64,
    pub price_per_kwh: f64,
}

/// Why a set of tariffs cannot make a calendar.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TariffError {
    #[error("unknown time zone {0:?} (use an IANA name like \"Europe/Paris\")")]
    UnknownTimeZone(String),
    #[error("tariff {name:?}: from and to are the same, the period would be empty")]
    EmptyPeriod { name: String },
    #[error("tariff {name:?}: ev_cap_pct {value} is not a percentage (0 to 100)")]
    BadCap { name: String, value: f64 },
    #[error("tariff {name:?}: price_per_kwh {value} must be a finite price, 0 or more")]
    BadPrice { name: String, value: f64 },
}

#[derive(Clone, Debug, PartialEq)]
struct Period {
    name: String,
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [bool; 7],
    /// Minutes since local midnight, 0..=1440.
    from: u16,
    to: u16,
    ev_cap_pct: f64,
    price_per_kwh: f64,
}

impl Period {
    fn runs_on(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
    }

    /// The instants of the occurrence that starts on `date` (local).
    fn occurrence(&self, date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        let start = midnight + TimeDelta::minutes(i64::from(self.from));
        let end_day = if self.to > self.from {
            midnight
        } else {
            midnight + TimeDelta::days(1)
        };
        let end = end_day + TimeDelta::minutes(i64::from(self.to));
        (
            first_instant_at_or_after(tz, start),
            first_instant_at_or_after(tz, end),
        )
    }

    fn active(&self) -> ActivePeriod {
        ActivePeriod {
            name: self.name.clone(),
            ev_cap_pct: self.ev_cap_pct,
            price_per_kwh: self.price_per_kwh,
        }
    }
}

/// The first instant at which the clock of `tz` shows `local` or later.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // Gaps are whole minutes and shorter than two days (Samoa skipped one whole day).
    for minutes in 0..=(2 * 24 * 60) {
        let candidate = local + TimeDelta::minutes(minutes);
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => {}
        }
    }
    // Not reached with the time zone database; read the time with the offset in force.
    let offset = chrono::Offset::fix(&tz.offset_from_utc_datetime(&local));
    (local - TimeDelta::seconds(i64::from(offset.local_minus_utc()))).and_utc()
}

/// The tariff periods of a site, in its time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct TariffCalendar {
    tz: Tz,
    periods: Vec<Period>,
}

impl TariffCalendar {
    /// A calendar without periods: no cap, no price.
    pub fn empty(tz: Tz) -> TariffCalendar {
        TariffCalendar {
            tz,
            periods: Vec::new(),
        }
    }

    /// The calendar of `[[tariffs]]` in the site's time zone (`site.timezone`).
    pub fn new(tariffs: &[TariffConfig], timezone: &str) -> Result<TariffCalendar, TariffError> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| TariffError::UnknownTimeZone(timezone.to_owned()))?;
        let mut periods = Vec::with_capacity(tariffs.len());
        for t in tariffs {
            if t.from == t.to {
                return Err(TariffError::EmptyPeriod {
                    name: t.name.clone(),
                });
            }
            if !t.ev_cap_pct.is_finite() || !(0.0..=100.0).contains(&t.ev_cap_pct) {
                return Err(TariffError::BadCap {
                    name: t.name.clone(),
                    value: t.ev_cap_pct,
                });
            }
            if !t.price_per_kwh.is_finite() || t.price_per_kwh < 0.0 {
                return Err(TariffError::BadPrice {
                    name: t.name.clone(),
                    value: t.price_per_kwh,
                });
            }
            let mut days = [false; 7];
            for day in &t.days {
                days[day.0.num_days_from_monday() as usize] = true;
            }
            periods.push(Period {
                name: t.name.clone(),
                days,
                from: t.from.minutes,
                to: t.to.minutes,
                ev_cap_pct: t.ev_cap_pct,
                price_per_kwh: t.price_per_kwh,
            });
        }
        Ok(TariffCalendar { tz, periods })
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// The occurrences that may hold or bound instants of local dates `first..=last`
    /// (relative to `at`'s local date), non-empty ones only, in the order of the periods.
    fn occurrences(
        &self,
        at: DateTime<Utc>,
        first: i64,
        last: i64,
    ) -> impl Iterator<Item = (&Period, DateTime<Utc>, DateTime<Utc>)> + '_ {
        let today = self.local_date(at);
        self.periods.iter().flat_map(move |period| {
            (first..=last).filter_map(move |offset| {
                let date = shift(today, offset)?;
                if !period.runs_on(date) {
                    return None;
                }
                let (start, end) = period.occurrence(date, self.tz);
                (start < end).then_some((period, start, end))
            })
        })
    }

    /// The period in force at `now`, if any (the lowest cap among overlapping ones).
    pub fn period_at(&self, now: DateTime<Utc>) -> Option<ActivePeriod> {
        // An occurrence lasts at most until the midnight after the day it starts.
        let mut chosen: Option<&Period> = None;
        for (period, start, end) in self.occurrences(now, -1, 0) {
            if start <= now && now < end && chosen.is_none_or(|c| period.ev_cap_pct < c.ev_cap_pct)
            {
                chosen = Some(period);
            }
        }
        chosen.map(Period::active)
    }

    /// The first instant after `after` at which a period starts or ends; `None` when the
    /// calendar has no period on any day.
    pub fn next_boundary(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Every period recurs weekly, so a boundary comes within eight local days.
        self.occurrences(after, -1, 8)
            .flat_map(|(_, start, end)| [start, end])
            .filter(|t| *t > after)
            .min()
    }

    /// The fraction of the zones' EV budget allowed at `now`: 1.0 outside every period.
    pub fn cap_fraction_at(&self, now: DateTime<Utc>) -> f64 {
        self.period_at(now).map_or(1.0, |p| p.ev_cap_pct / 100.0)
    }

    /// The energy price at `now`, for transaction costs; `None` outside every period.
    pub fn price_at(&self, now: DateTime<Utc>) -> Option<f64> {
        self.period_at(now).map(|p| p.price_per_kwh)
    }
}

fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let magnitude = Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(magnitude)
    } else {
        date.checked_sub_days(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClockTime, Day};
    use chrono::Weekday;

    fn hm(text: &str) -> ClockTime {
        let (h, m) = text.split_once(':').expect("HH:MM");
        ClockTime {
            minutes: h.parse::<u16>().expect("hours") * 60 + m.parse::<u16>().expect("minutes"),
        }
    }

    fn tariff(
        name: &str,
        days: &[Weekday],
        from: &str,
        to: &str,
        cap: f64,
        price: f64,
    ) -> TariffConfig {
        TariffConfig {
            name: name.into(),
            days: days.iter().map(|d| Day(*d)).collect(),
            from: hm(from),
            to: hm(to),
            ev_cap_pct: cap,
            price_per_kwh: price,
        }
    }

    fn paris(tariffs: &[TariffConfig]) -> TariffCalendar {
        TariffCalendar::new(tariffs, "Europe/Paris").expect("a valid calendar")
    }

    /// A UTC instant written as `YYYY-MM-DD HH:MM` in UTC.
    fn utc(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .expect("a valid instant")
            .and_utc()
    }

    /// An instant written as Paris wall-clock time (must be unambiguous).
    fn local(text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a valid instant");
        chrono_tz::Europe::Paris
            .from_local_datetime(&naive)
            .single()
            .expect("an unambiguous local time")
            .with_timezone(&Utc)
    }

    const WEEKDAYS: [Weekday; 5] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];

    fn name_at(calendar: &TariffCalendar, at: DateTime<Utc>) -> Option<String> {
        calendar.period_at(at).map(|p| p.name)
    }

    // 2026-03-02 is a Monday; Paris is on CET (UTC+1) until 2026-03-29.

    #[test]
    fn a_period_is_in_force_from_its_start_until_just_before_its_end_in_local_time() {
        let c = paris(&[tariff("peak", &WEEKDAYS, "17:00", "21:00", 30.0, 0.32)]);
        assert_eq!(name_at(&c, local("2026-03-02 16:59")), None);
        assert_eq!(name_at(&c, local("2026-03-02 17:00")), Some("peak".into()));
        assert_eq!(
            name_at(&c, utc("2026-03-02 16:00")),
            Some("peak".into()),
            "17:00 CET is 16:00 UTC"
        );
        assert_eq!(name_at(&c, local("2026-03-02 20:59")), Some("peak".into()));
        assert_eq!(name_at(&c, local("2026-03-02 21:00")), None);
        assert_eq!(
            name_at(&c, local("2026-03-07 18:00")),
            None,
            "not on Saturday"
        );
    }

    #[test]
    fn cap_and_price_come_from_the_period_and_default_to_no_cap_and_no_price() {
        let c = paris(&[tariff("peak", &WEEKDAYS, "17:00", "21:00", 30.0, 0.32)]);
        assert_eq!(c.cap_fraction_at(local("2026-03-02 18:00")), 0.3);
        assert_eq!(c.price_at(local("2026-03-02 18:00")), Some(0.32));
        assert_eq!(
            c.period_at(local("2026-03-02 18:00")),
            Some(ActivePeriod {
                name: "peak".into(),
                ev_cap_pct: 30.0,
                price_per_kwh: 0.32
            })
        );
        assert_eq!(c.cap_fraction_at(local("2026-03-02 12:00")), 1.0);
        assert_eq!(c.price_at(local("2026-03-02 12:00")), None);
        let empty = TariffCalendar::empty(chrono_tz::Europe::Paris);
        assert_eq!(empty.cap_fraction_at(local("2026-03-02 18:00")), 1.0);
        assert_eq!(empty.next_boundary(local("2026-03-02 18:00")), None);
    }

    #[test]
    fn a_period_past_midnight_belongs_to_the_day_it_starts() {
        let c = paris(&[tariff(
            "night",
            &[Weekday::Fri],
            "22:00",
            "06:00",
            50.0,
            0.15,
        )]);
        assert_eq!(name_at(&c, local("2026-03-06 21:59")), None);
        assert_eq!(name_at(&c, local("2026-03-06 23:00")), Some("night".into()));
        assert_eq!(
            name_at(&c, local("2026-03-07 05:59")),
            Some("night".into()),
            "Saturday morning, Friday's night"
        );
        assert_eq!(name_at(&c, local("2026-03-07 06:00")), None);
        assert_eq!(
            name_at(&c, local("2026-03-07 23:00")),
            None,
            "not Saturday night"
        );
        assert_eq!(
            name_at(&c, local("2026-03-06 05:00")),
            None,
            "Friday morning is Thursday's night"
        );
    }

    #[test]
    fn twenty_four_hundred_ends_the_day() {
        let c = paris(&[tariff(
            "evening",
            &[Weekday::Sun],
            "20:00",
            "24:00",
            40.0,
            0.2,
        )]);
        assert_eq!(
            name_at(&c, local("2026-03-08 23:59")),
            Some("evening".into())
        );
        assert_eq!(name_at(&c, local("2026-03-09 00:00")), None);
        assert_eq!(
            c.next_boundary(local("2026-03-08 21:00")),
            Some(local("2026-03-09 00:00"))
        );
        let whole_day = paris(&[tariff(
            "sunday",
            &[Weekday::Sun],
            "00:00",
            "24:00",
            40.0,
            0.2,
        )]);
        assert_eq!(
            name_at(&whole_day, local("2026-03-08 00:00")),
            Some("sunday".into())
        );
        assert_eq!(
            name_at(&whole_day, local("2026-03-08 23:59")),
            Some("sunday".into())
        );
        assert_eq!(name_at(&whole_day, local("2026-03-09 00:00")), None);
    }

    #[test]
    fn overlapping_periods_the_lowest_cap_applies_with_its_price() {
        let c = paris(&[
            tariff("peak", &WEEKDAYS, "17:00", "21:00", 50.0, 0.30),
            tariff("critical", &[Weekday::Mon], "18:00", "19:00", 20.0, 0.45),
            tariff("evening", &WEEKDAYS, "17:00", "23:00", 80.0, 0.25),
        ]);
        assert_eq!(
            c.period_at(local("2026-03-02 17:30"))
                .map(|p| (p.name, p.price_per_kwh)),
            Some(("peak".into(), 0.30))
        );
        assert_eq!(
            c.period_at(local("2026-03-02 18:30"))
                .map(|p| (p.name, p.price_per_kwh)),
            Some(("critical".into(), 0.45))
        );
        assert_eq!(c.cap_fraction_at(local("2026-03-02 18:30")), 0.2);
        assert_eq!(
            name_at(&c, local("2026-03-02 22:00")),
            Some("evening".into())
        );
        assert_eq!(
            name_at(&c, local("2026-03-03 18:30")),
            Some("peak".into()),
            "critical is Monday only"
        );
    }

    #[test]
    fn equal_caps_the_first_listed_period_applies() {
        let c = paris(&[
            tariff("first", &WEEKDAYS, "17:00", "21:00", 50.0, 0.30),
            tariff("second", &WEEKDAYS, "16:00", "22:00", 50.0, 0.40),
        ]);
        assert_eq!(name_at(&c, local("2026-03-02 18:00")), Some("first".into()));
        assert_eq!(
            name_at(&c, local("2026-03-02 16:30")),
            Some("second".into())
        );
    }

    #[test]
    fn next_boundary_is_the_next_start_or_end_strictly_after() {
        let c = paris(&[tariff("peak", &WEEKDAYS, "17:00", "21:00", 30.0, 0.32)]);
        assert_eq!(
            c.next_boundary(local("2026-03-02 12:00")),
            Some(local("2026-03-02 17:00"))
        );
        assert_eq!(
            c.next_boundary(local("2026-03-02 17:00")),
            Some(local("2026-03-02 21:00"))
        );
        assert_eq!(
            c.next_boundary(local("2026-03-02 21:00")),
            Some(local("2026-03-03 17:00"))
        );
        assert_eq!(
            c.next_boundary(local("2026-03-06 21:00")),
            Some(local("2026-03-09 17:00")),
            "over the weekend"
        );
        let weekly = paris(&[tariff(
            "sunday",
            &[Weekday::Sun],
            "10:00",
            "11:00",
            30.0,
            0.32,
        )]);
        assert_eq!(
            weekly.next_boundary(local("2026-03-08 11:00")),
            Some(local("2026-03-15 10:00")),
            "a week later"
        );
        let night = paris(&[tariff(
            "night",
            &[Weekday::Fri],
            "22:00",
            "06:00",
            50.0,
            0.15,
        )]);
        assert_eq!(
            night.next_boundary(local("2026-03-07 01:00")),
            Some(local("2026-03-07 06:00"))
        );
    }

    // Spring forward: on 2026-03-29 Paris clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC).

    #[test]
    fn spring_forward_a_boundary_in_the_gap_moves_to_the_end_of_the_gap() {
        let c = paris(&[tariff(
            "early",
            &[Weekday::Sun],
            "02:30",
            "05:00",
            50.0,
            0.1,
        )]);
        assert_eq!(name_at(&c, utc("2026-03-29 00:59")), None);
        assert_eq!(
            name_at(&c, utc("2026-03-29 01:00")),
            Some("early".into()),
            "03:00 CEST, the end of the gap"
        );
        assert_eq!(
            c.next_boundary(utc("2026-03-29 00:00")),
            Some(utc("2026-03-29 01:00"))
        );
        assert_eq!(
            c.next_boundary(utc("2026-03-29 01:00")),
            Some(utc("2026-03-29 03:00")),
            "05:00 CEST"
        );
        assert_eq!(name_at(&c, utc("2026-03-29 03:00")), None);
    }

    #[test]
    fn spring_forward_periods_follow_the_new_offset_and_lose_the_missing_hour() {
        let c = paris(&[
            tariff("peak", &[Weekday::Sun], "17:00", "21:00", 30.0, 0.32),
            tariff("night", &[Weekday::Sun], "01:00", "03:00", 60.0, 0.1),
        ]);
        assert_eq!(
            name_at(&c, utc("2026-03-29 15:00")),
            Some("peak".into()),
            "17:00 CEST is 15:00 UTC"
        );
        assert_eq!(name_at(&c, utc("2026-03-29 14:59")), None);
        assert_eq!(
            name_at(&c, utc("2026-03-29 00:00")),
            Some("night".into()),
            "01:00 CET"
        );
        assert_eq!(name_at(&c, utc("2026-03-29 00:59")), Some("night".into()));
        assert_eq!(
            name_at(&c, utc("2026-03-29 01:00")),
            None,
            "03:00 CEST: one real hour only"
        );
        let inside_gap = paris(&[tariff(
            "ghost",
            &[Weekday::Sun],
            "02:10",
            "02:50",
            60.0,
            0.1,
        )]);
        assert_eq!(
            name_at(&inside_gap, utc("2026-03-29 01:00")),
            None,
            "a period inside the gap never runs"
        );
        assert_eq!(
            inside_gap.next_boundary(utc("2026-03-29 00:00")),
            Some(local("2026-04-05 02:10")),
            "its next boundary is the next Sunday's"
        );
    }

    // Fall back: on 2026-10-25 Paris clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC),
    // so 02:00-03:00 happens twice: 00:00-01:00 UTC, then 01:00-02:00 UTC.

    #[test]
    fn fall_back_a_boundary_in_the_repeated_hour_is_its_first_occurrence() {
        let c = paris(&[tariff("late", &[Weekday::Sun], "02:30", "04:00", 50.0, 0.1)]);
        assert_eq!(name_at(&c, utc("2026-10-25 00:29")), None);
        assert_eq!(
            name_at(&c, utc("2026-10-25 00:30")),
            Some("late".into()),
            "the first 02:30, CEST"
        );
        assert_eq!(
            name_at(&c, utc("2026-10-25 01:45")),
            Some("late".into()),
            "the second 02:45, CET"
        );
        assert_eq!(
            name_at(&c, utc("2026-10-25 02:59")),
            Some("late".into()),
            "03:59 CET"
        );
        assert_eq!(name_at(&c, utc("2026-10-25 03:00")), None, "04:00 CET");
        assert_eq!(
            c.next_boundary(utc("2026-10-25 00:00")),
            Some(utc("2026-10-25 00:30"))
        );
        assert_eq!(
            c.next_boundary(utc("2026-10-25 00:30")),
            Some(utc("2026-10-25 03:00"))
        );
    }

    #[test]
    fn fall_back_a_night_period_ends_at_the_first_occurrence_of_its_end() {
        let c = paris(&[tariff(
            "night",
            &[Weekday::Sat],
            "22:00",
            "02:30",
            50.0,
            0.1,
        )]);
        assert_eq!(
            name_at(&c, utc("2026-10-24 20:00")),
            Some("night".into()),
            "22:00 CEST"
        );
        assert_eq!(
            name_at(&c, utc("2026-10-25 00:15")),
            Some("night".into()),
            "the first 02:15"
        );
        assert_eq!(
            name_at(&c, utc("2026-10-25 00:30")),
            None,
            "the first 02:30"
        );
        assert_eq!(
            name_at(&c, utc("2026-10-25 01:15")),
            None,
            "the second 02:15 is after the end"
        );
        let peak = paris(&[tariff(
            "peak",
            &[Weekday::Sun],
            "17:00",
            "21:00",
            30.0,
            0.32,
        )]);
        assert_eq!(
            name_at(&peak, utc("2026-10-25 16:00")),
            Some("peak".into()),
            "17:00 CET is 16:00 UTC"
        );
        assert_eq!(name_at(&peak, utc("2026-10-25 15:59")), None);
    }

    #[test]
    fn bad_tariffs_are_refused_with_their_name() {
        assert_eq!(
            TariffCalendar::new(&[], "Mars/Olympus"),
            Err(TariffError::UnknownTimeZone("Mars/Olympus".into()))
        );
        assert_eq!(
            TariffCalendar::new(
                &[tariff("x", &WEEKDAYS, "10:00", "10:00", 50.0, 0.1)],
                "UTC"
            ),
            Err(TariffError::EmptyPeriod { name: "x".into() })
        );
        assert!(matches!(
            TariffCalendar::new(
                &[tariff("x", &WEEKDAYS, "10:00", "11:00", 150.0, 0.1)],
                "UTC"
            ),
            Err(TariffError::BadCap { .. })
        ));
        assert!(matches!(
            TariffCalendar::new(
                &[tariff("x", &WEEKDAYS, "10:00", "11:00", 50.0, f64::NAN)],
                "UTC"
            ),
            Err(TariffError::BadPrice { .. })
        ));
    }

    #[test]
    fn a_utc_site_needs_no_conversion() {
        let c = TariffCalendar::new(
            &[tariff("peak", &WEEKDAYS, "17:00", "21:00", 30.0, 0.32)],
            "UTC",
        )
        .expect("valid");
        assert_eq!(name_at(&c, utc("2026-03-02 17:00")), Some("peak".into()));
        assert_eq!(name_at(&c, utc("2026-03-02 16:59")), None);
        assert_eq!(c.time_zone(), chrono_tz::UTC);
    }

    proptest::proptest! {
        /// The actor sleeps from boundary to boundary: nothing may change in between.
        #[test]
        fn the_period_never_changes_between_two_boundaries(seconds in 0i64..(2 * 366 * 24 * 3600), fraction in 0.0f64..1.0) {
            let c = paris(&[
                tariff("peak", &WEEKDAYS, "17:00", "21:00", 50.0, 0.30),
                tariff("critical", &[Weekday::Mon, Weekday::Sun], "18:00", "19:00", 20.0, 0.45),
                tariff("night", &[Weekday::Fri, Weekday::Sat, Weekday::Sun], "22:00", "02:30", 70.0, 0.12),
                tariff("weekend", &[Weekday::Sat, Weekday::Sun], "00:00", "24:00", 90.0, 0.2),
            ]);
            let t = utc("2026-01-01 00:00") + TimeDelta::seconds(seconds);
            let next = c.next_boundary(t).expect("a weekly calendar always has a next boundary");
            proptest::prop_assert!(next > t);
            proptest::prop_assert!(next - t <= TimeDelta::days(8));
            let span = (next - t).num_milliseconds();
            let inside = t + TimeDelta::milliseconds((span as f64 * fraction) as i64);
            let last = next - TimeDelta::milliseconds(1);
            proptest::prop_assert_eq!(c.period_at(t), c.period_at(inside));
            proptest::prop_assert_eq!(c.period_at(t), c.period_at(last));
        }
    }
}
