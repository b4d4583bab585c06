//! `storage/schema.rs` is diesel's view of `migrations/`; this keeps the two
//! in step, column by column and in order.

use diesel::pg::Pg;
use diesel::{QueryDsl, debug_query};
use dispatcher_service::storage::schema::{attempts, deliveries, events, health_relay};

use crate::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrated_database() {
    let world = World::start().await;
    let _dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let expected = [
        (
            "events",
            debug_query::<Pg, _>(&events::table.select(events::all_columns)).to_string(),
        ),
        (
            "deliveries",
            debug_query::<Pg, _>(&deliveries::table.select(deliveries::all_columns)).to_string(),
        ),
        (
            "attempts",
            debug_query::<Pg, _>(&attempts::table.select(attempts::all_columns)).to_string(),
        ),
        (
            "health_relay",
            debug_query::<Pg, _>(&health_relay::table.select(health_relay::all_columns))
                .to_string(),
        ),
    ];
    for (table, sql) in expected {
        assert_eq!(
            test_support::selected_columns(table, &sql),
            world.dispatch_db.columns(table).await.unwrap(),
            "schema.rs is out of step with migrations for {table}"
        );
    }
}
