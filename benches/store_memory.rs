//! The store's memory per stored transaction: sled keeps ~20 bytes for every key it
//! holds, evicted or not, so the layout decides how the controller grows with its
//! history (BENCHMARKS.md, "Soak"). Runs transactions through [`Store`] as station actors
//! do — begin, samples, an energy update, more samples, stop — round-robin over the
//! stations, and prints the live heap (glibc `mallinfo2`) as it goes. The transactions'
//! starts spread evenly over `--days`; at the end it times listing them all and listing
//! the last 30 days (what the Sessions page and the CSV export do).
//!
//! ```text
//! cargo bench --bench store_memory                                   # 200 000 transactions
//! cargo bench --bench store_memory -- --transactions 500000 --samples-per-message 6
//! cargo bench --bench store_memory -- --messages 0                   # records only
//! ```

use ampwarden_actors::store::{NewTransaction, Sample, Store, TransactionFilter, TransactionStop};
use chrono::Utc;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Heap growth of the store per stored transaction")]
struct Args {
    /// Transactions to store.
    #[arg(long, default_value_t = 200_000)]
    transactions: usize,
    /// Stations they rotate over (one open transaction each).
    #[arg(long, default_value_t = 500)]
    stations: usize,
    /// MeterValues messages stored per transaction (0: no samples).
    #[arg(long, default_value_t = 8)]
    messages: usize,
    /// Samples per message.
    #[arg(long, default_value_t = 3)]
    samples_per_message: usize,
    /// Days the transactions' starts spread over, ending now.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn heap_mb() -> f64 {
    ampwarden::memory::trim();
    ampwarden::memory::heap_usage().map_or(f64::NAN, |h| h.in_use_bytes as f64 / 1e6)
}

fn main() {
    let args = Args::parse();
    ampwarden::memory::tune_malloc();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path()).expect("a store");
    let message: Vec<Sample> = ["L1", "L2", "L3", "N"]
        .iter()
        .cycle()
        .take(args.samples_per_message)
        .map(|phase| Sample {
            at: Utc::now(),
            measurand: "Current.Import".into(),
            phase: Some((*phase).into()),
            value: 16.0,
            unit: Some("A".into()),
        })
        .collect();
    let store_messages = |id: i32, n: usize| {
        for _ in 0..n {
            store.add_samples(id, &message).expect("samples stored");
        }
    };
    let now = Utc::now();
    let history_ms = args.days.max(0) * 86_400_000;
    let started = |i: usize| {
        let ms = history_ms * i as i64 / args.transactions.max(1) as i64;
        now - chrono::TimeDelta::milliseconds(history_ms - ms)
    };
    let mut open = vec![None; args.stations.max(1)];
    let step = (args.transactions / 10).max(1);
    // Measured from the first tenth on: sled's caches and buffers fill before that.
    let mut from: Option<(usize, f64)> = None;
    println!(
        "{} transactions over {} stations, {} messages of {} samples each",
        args.transactions, args.stations, args.messages, args.samples_per_message
    );
    for i in 0..=args.transactions {
        if i % step == 0 {
            // What sled has not written yet would count as growth otherwise.
            store.flush().expect("flushed");
            let heap = heap_mb();
            match from {
                Some((n0, h0)) => println!(
                    "{i:>9} transactions  heap {heap:6.2} MB  {:+6.1} bytes per transaction since {n0}",
                    (heap - h0) * 1e6 / (i - n0) as f64
                ),
                None if i > 0 => {
                    println!("{i:>9} transactions  heap {heap:6.2} MB");
                    from = Some((i, heap));
                }
                None => println!("{i:>9} transactions  heap {heap:6.2} MB"),
            }
        }
        if i == args.transactions {
            break;
        }
        let s = i % open.len();
        if let Some(mut t) = open[s].take() {
            let t: &mut ampwarden_actors::store::TransactionRecord = &mut t;
            store_messages(t.id, args.messages / 2);
            t.advance_register(2000.0, None);
            store.update_transaction(t).expect("energy stored");
            let stop = TransactionStop {
                at: Utc::now(),
                meter_stop_wh: 3000,
                reason: None,
                id_tag: None,
            };
            store.stop_transaction(t.id, stop, None).expect("stopped");
        }
        let t = store
            .begin_transaction(NewTransaction {
                station: format!("CP{s:04}").as_str().into(),
                connector: 1,
                id_tag: "TAG".into(),
                meter_start_wh: 1000,
                started_at: started(i),
                reservation_id: None,
                vip: false,
            })
            .expect("begun");
        store_messages(t.id, args.messages - args.messages / 2);
        open[s] = Some(t);
    }
    for (what, filter) in [
        ("every transaction", TransactionFilter::default()),
        (
            "the last 30 days",
            TransactionFilter {
                from: Some(now - chrono::TimeDelta::days(30)),
                ..TransactionFilter::default()
            },
        ),
    ] {
        let start = std::time::Instant::now();
        let listed = store.transactions(&filter).expect("listed").len();
        println!(
            "listing {what}: {listed} transactions in {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
