//! `storage/schema.rs` is diesel's view of `migrations/`; this keeps the two
//! in step, column by column and in order. (Column types are exercised by
//! every test that loads rows.)

use diesel::pg::Pg;
use diesel::{QueryDsl, debug_query};
use registry_service::storage::schema::{
    api_keys, health_events, notification_types, partners, registrations, registry_changes,
    registry_version,
};

use crate::TestRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrated_database() {
    let r = TestRegistry::start().await;
    let expected = [
        (
            "partners",
            debug_query::<Pg, _>(&partners::table.select(partners::all_columns)).to_string(),
        ),
        (
            "api_keys",
            debug_query::<Pg, _>(&api_keys::table.select(api_keys::all_columns)).to_string(),
        ),
        (
            "notification_types",
            debug_query::<Pg, _>(
                &notification_types::table.select(notification_types::all_columns),
            )
            .to_string(),
        ),
        (
            "registrations",
            debug_query::<Pg, _>(&registrations::table.select(registrations::all_columns))
                .to_string(),
        ),
        (
            "registry_version",
            debug_query::<Pg, _>(&registry_version::table.select(registry_version::all_columns))
                .to_string(),
        ),
        (
            "registry_changes",
            debug_query::<Pg, _>(&registry_changes::table.select(registry_changes::all_columns))
                .to_string(),
        ),
        (
            "health_events",
            debug_query::<Pg, _>(&health_events::table.select(health_events::all_columns))
                .to_string(),
        ),
    ];
    for (table, sql) in expected {
        assert_eq!(
            test_support::selected_columns(table, &sql),
            r.db.columns(table).await.unwrap(),
            "schema.rs is out of step with migrations for {table}"
        );
    }
}
