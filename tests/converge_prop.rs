//! Property: for any inventory, `apply` followed by `plan` is empty, also when a second,
//! different inventory is applied over the first (updates, deactivations, destroys).

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use sipform::apply::{self, Silent};
use sipform::config::{Overrides, Settings};
use sipform::front::diagnostics::{Origin, Sourced};
use sipform::model::ids::RestaurantId;
use sipform::model::spec::{ChatMode, Restaurant, StateConfig};
use sipform::ops::plan::PlanOptions;
use sipform::ops::Workspace;
use sipform_emulator::{Emulator, EmulatorConfig};

fn restaurant(slot: usize) -> impl Strategy<Value = Restaurant> {
    (
        "[A-Za-z][A-Za-z '&é-]{0,24}",
        any::<[bool; 9]>(),
        prop::option::of(prop::sample::select(vec!["sage", "alloy", "verse"])),
        prop::option::of(prop::sample::select(vec![
            "Europe/Paris",
            "America/New_York",
            "UTC",
        ])),
        prop::option::of(prop::sample::select(vec![
            ChatMode::Text,
            ChatMode::SttTts,
            ChatMode::Realtime,
        ])),
        prop::option::of(60u32..3600),
        prop::option::of("\\+336[0-9]{8}"),
    )
        .prop_map(
            move |(name, f, voice, tz, chat_mode, max, transfer)| Restaurant {
                id: RestaurantId::new(format!("00000000-0000-4000-8000-00000000000{slot}")),
                name,
                phone: None,
                contact_email: Some(format!("r{slot}@example.com")),
                ai_voice: voice.map(str::to_string),
                timezone: tz.map(str::to_string),
                delivery_enabled: f[0],
                reservation_enabled: f[1],
                order_status_enabled: f[2],
                transfer_enabled: f[3],
                transfer_automatic: f[4],
                transfer_phone_number: transfer,
                chat_enabled: f[5],
                chat_mode,
                chat_title: f[6].then(|| "Commandez ici".to_string()),
                chat_open_on_load: f[7],
                sip_enabled: f[8],
                is_active: true,
                max_call_duration_sec: max,
                phone_line: None,
                platform: Default::default(),
            },
        )
}

/// Up to 4 restaurants drawn from 6 fixed slots, so two inventories overlap and differ.
fn inventory() -> impl Strategy<Value = Vec<Restaurant>> {
    prop::sample::subsequence((0..6).collect::<Vec<usize>>(), 0..=4)
        .prop_flat_map(|slots| slots.into_iter().map(restaurant).collect::<Vec<_>>())
}

fn sourced(rs: &[Restaurant]) -> Vec<Sourced<Restaurant>> {
    rs.iter()
        .map(|r| Sourced {
            value: r.clone(),
            origin: Origin::Row {
                table: "generated".into(),
                key: r.id.to_string(),
            },
        })
        .collect()
}

async fn converge(settings: &Settings, rs: &[Restaurant]) -> Result<(), TestCaseError> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let env = settings.render_env();
    let v = sipform::front::validate::desired_with(&root, &env, sourced(rs))
        .map_err(|d| TestCaseError::fail(d.to_string()))?;
    let ws = Workspace::new(settings.clone(), v.desired)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let client = ws
        .client()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let all = PlanOptions {
        allow_destroy: true,
        allow_replace: false,
        targets: BTreeSet::new(),
        only_changes: false,
        allow_rollback: false,
        allow_dirty: false,
        ignore_windows: false,
    };
    let state = ws
        .state()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let plan = ws
        .plan(&client, &state, &all)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let writer = ws.writer(state);
    let report = apply::apply(&plan, &client, &writer, &Silent).await;
    prop_assert!(!report.failed(), "{}", sipform::output::report(&report));
    let state = ws
        .state()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = ws
        .plan(&client, &state, &all)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        !again.has_changes(),
        "plan after apply is not empty: {}",
        sipform::output::human(&again, false)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn apply_then_plan_is_empty(first in inventory(), second in inventory()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let emu = Emulator::start(EmulatorConfig::default()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let scratch = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let overrides = Overrides {
                server_url: Some(emu.base_url()),
                api_key: Some(None),
                state: Some(StateConfig::File { path: scratch.path().join("state.json"), store_tokens: false }),
                ..Overrides::default()
            };
            let settings = Settings::load(&root, &overrides).map_err(|e| TestCaseError::fail(e.to_string()))?;
            converge(&settings, &first).await?;
            converge(&settings, &second).await?;
            emu.shutdown().await;
            Ok::<(), TestCaseError>(())
        })?;
    }
}
