//! Notifications (issue 30, part B): every kind of event reaches a local webhook once, with no
//! secret in its body; a failing webhook is retried a bounded number of times; a full queue
//! drops (and counts) instead of making anyone wait; the controller notifies a parked
//! restaurant.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use serde_json::json;
use sipform::model::ids::RestaurantId;
use sipform::model::secret::Secret;
use sipform::model::spec::{Breach, LimitKind, NotifyConfig, NotifyFormat};
use sipform::notify::{Event, Notifier, RetryPolicy, QUEUE};

/// A database URL with its password, as an error message may hold one.
const DB_URL: &str = "postgres://app:hunter2@db.internal:5432/platform";

fn config(hook: &Receiver, format: NotifyFormat) -> NotifyConfig {
    NotifyConfig {
        // The path holds the webhook's secret, as a Slack incoming webhook's does.
        webhook: Some(Secret::new(format!("{}/services/T0/B0/s3cr3t", hook.base))),
        format,
    }
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_backoff: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    }
}

fn every_kind() -> Vec<Event> {
    vec![
        Event::RolloutHalted {
            rollout: "wave-2".into(),
            reason: format!("health gate failed reading {DB_URL}"),
        },
        Event::RolloutFinished {
            rollout: "wave-3".into(),
            restaurants: 120,
        },
        Event::RestaurantParked {
            restaurant: RestaurantId::new("r-1"),
            name: Some("Chez Marco".into()),
            reason: "the server answered 422".into(),
        },
        Event::GuardrailRefused {
            breaches: vec![Breach {
                limit: LimitKind::Deactivations,
                count: 60,
                allowed: 5,
                setting: "5%".into(),
                fleet: 100,
            }],
            needed: 60,
        },
        Event::FeedDown {
            reason: format!("reading the change log at {DB_URL}: connection refused"),
        },
        Event::LeadershipLost,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_reaches_the_webhook_once_without_a_secret() {
    let hook = Receiver::start().await;
    let (notifier, worker) =
        Notifier::start(&config(&hook, NotifyFormat::Json), "alloresto", fast(3)).expect("start");
    for e in every_kind() {
        notifier.notify(e);
    }
    let stats = notifier.stats();
    drop(notifier);
    worker.finish(Duration::from_secs(30)).await;
    let got = hook.received();
    let kinds: Vec<&str> = got.iter().filter_map(|(_, b)| b["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "rollout_halted",
            "rollout_finished",
            "restaurant_parked",
            "guardrail_refused",
            "feed_down",
            "leadership_lost"
        ]
    );
    for (path, body) in &got {
        assert_eq!(path, "/services/T0/B0/s3cr3t");
        let text = body.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(body["project"], "alloresto");
    }
    assert!(got[4].1["message"]
        .as_str()
        .is_some_and(|m| m.contains("postgres://***@db.internal:5432/platform")));
    assert_eq!(stats.sent.load(Ordering::Relaxed), 6);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_only_text() {
    let hook = Receiver::start().await;
    let (notifier, worker) =
        Notifier::start(&config(&hook, NotifyFormat::Slack), "alloresto", fast(1)).expect("start");
    notifier.notify(Event::LeadershipLost);
    drop(notifier);
    worker.finish(Duration::from_secs(30)).await;
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1,
        json!({"text": "sipform (alloresto): the controller lost the leader lock and stands by"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_a_bounded_number_of_times_and_a_4xx_or_redirect_never() {
    let hook = Receiver::start().await;
    hook.answer(503);
    let (notifier, worker) =
        Notifier::start(&config(&hook, NotifyFormat::Json), "p", fast(3)).expect("start");
    notifier.notify(Event::LeadershipLost);
    let stats = notifier.stats();
    drop(notifier);
    worker.finish(Duration::from_secs(30)).await;
    assert_eq!(hook.received().len(), 3);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 2);

    for status in [400, 302] {
        let hook = Receiver::start().await;
        hook.answer(status);
        let (notifier, worker) =
            Notifier::start(&config(&hook, NotifyFormat::Json), "p", fast(3)).expect("start");
        notifier.notify(Event::LeadershipLost);
        drop(notifier);
        worker.finish(Duration::from_secs(30)).await;
        assert_eq!(hook.received().len(), 1, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let hook = Receiver::start().await;
    hook.answer(500);
    let (notifier, worker) =
        Notifier::start(&config(&hook, NotifyFormat::Json), "p", fast(2)).expect("start");
    let n = 300u64;
    // The loop never waits for the webhook: what does not fit in the queue is dropped.
    for _ in 0..n {
        notifier.notify(Event::LeadershipLost);
    }
    let stats = notifier.stats();
    drop(notifier);
    worker.finish(Duration::from_secs(60)).await;
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(dropped >= n - QUEUE as u64 - 1, "dropped {dropped}");
    assert_eq!(stats.failed.load(Ordering::Relaxed) + dropped, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_notifies_a_parked_restaurant_once() {
    let emu = emulator().await;
    let dir = project_copy();
    let d = dir.path();
    let mut parked = String::new();
    edit_yaml(&restaurant_files(d)[0], |v| {
        v["sip_enabld"] = json!(true);
        parked = v["id"].as_str().unwrap_or_default().to_string();
    });
    let hook = Receiver::start().await;
    let out = command(d, &emu.base_url(), &["controller", "--once"])
        .env(
            "SIPFORM_NOTIFY_WEBHOOK",
            format!("{}/hooks/s3cr3t", hook.base),
        )
        .output()
        .expect("controller");
    let log = all_output(&out);
    assert!(!log.contains("s3cr3t"), "{log}");
    let got = hook.of_kind("restaurant_parked");
    assert_eq!(got.len(), 1, "{:?}\n{log}", hook.received());
    assert_eq!(got[0]["details"]["restaurantId"], parked.as_str());
    assert!(!got[0].to_string().contains("s3cr3t"));
    // The others were provisioned all the same.
    assert_eq!(agents(&emu).len(), restaurant_files(d).len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_does_not_stall_the_controller_and_is_tried_four_times() {
    let emu = emulator().await;
    let dir = project_copy();
    let d = dir.path();
    edit_yaml(&restaurant_files(d)[0], |v| {
        v["sip_enabld"] = json!(true);
    });
    let hook = Receiver::start().await;
    hook.answer(500);
    let out = command(d, &emu.base_url(), &["controller", "--once"])
        .env(
            "SIPFORM_NOTIFY_WEBHOOK",
            format!("{}/hooks/s3cr3t", hook.base),
        )
        .output()
        .expect("controller");
    let log = all_output(&out);
    // Every other restaurant reconciled; the event tried by the default policy, then given up.
    assert_eq!(agents(&emu).len(), restaurant_files(d).len() - 1, "{log}");
    assert_eq!(hook.received().len(), 4, "{log}");
    assert!(
        log.contains("did not take a restaurant_parked event after 4 attempt(s): answered 500"),
        "{log}"
    );
    assert!(!log.contains("s3cr3t"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_notifies_a_missing_change_feed_once() {
    use common::controller::{insert, platform};
    use common::db::Engine;
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    insert(&db, 0..2).await;
    // No `install-trigger`: the feed's log and trigger are missing.
    let hook = Receiver::start().await;
    let out = command(dir.path(), &emu.base_url(), &["controller", "--once"])
        .env(
            "SIPFORM_NOTIFY_WEBHOOK",
            format!("{}/hooks/s3cr3t", hook.base),
        )
        .output()
        .expect("controller");
    let log = all_output(&out);
    let got = hook.of_kind("feed_down");
    assert_eq!(got.len(), 1, "{:?}\n{log}", hook.received());
    assert!(
        got[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("change log")),
        "{}",
        got[0]
    );
    assert!(!got[0].to_string().contains("s3cr3t"));
    assert_eq!(agents(&emu).len(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_notifies_a_lost_lead_once() {
    use common::controller::{eventually, install_trigger, platform, start};
    use common::db::Engine;
    let emu = emulator().await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let hook = Receiver::start().await;
    let url = format!("{}/hooks/s3cr3t", hook.base);
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_NOTIFY_WEBHOOK", url.as_str())],
    );
    eventually("the controller to lead", 30, || ctl.is_leader()).await;
    // The session holding the leader's advisory lock is cut, as a failover would.
    let cut = common::controller::cut_leader_lock(&db).await;
    assert_eq!(cut.as_deref(), Some("1"), "the leader's lock session");
    let seen = hook.clone();
    eventually("leadership_lost notified", 30, || {
        let n = seen.of_kind("leadership_lost").len();
        async move { n > 0 }
    })
    .await;
    let got = hook.of_kind("leadership_lost");
    assert_eq!(got.len(), 1, "{:?}\n{}", hook.received(), ctl.log_text());
    assert!(!got[0].to_string().contains("s3cr3t"));
    assert!(!ctl.log_text().contains("s3cr3t"));
}
