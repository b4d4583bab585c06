//! `storage/schema.rs` is diesel's view of `migrations/`; this keeps the two
//! in step, column by column and in order.

use diesel::pg::Pg;
use diesel::{QueryDsl, debug_query};
use dispatcher_service::storage::schema::{attempts, deliveries, events};

use crate::World;

fn columns_of(table: &str, sql: &str) -> Vec<String> {
    let marker = format!("\"{table}\".\"");
    sql.split(&marker)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrated_database() {
    let world = World::start().await;
    let _dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let db = world.dispatch_db.client().await.unwrap();
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
    ];
    for (table, sql) in expected {
        let live: Vec<String> = db
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            columns_of(table, &sql),
            live,
            "schema.rs is out of step with migrations for {table}"
        );
    }
}
