//! `storage/schema.rs` is diesel's view of `migrations/`; this keeps the two
//! in step, column by column and in order. (Column types are exercised by
//! every test that loads rows.)

use diesel::pg::Pg;
use diesel::{QueryDsl, debug_query};
use registry_service::storage::schema::{api_keys, notification_types, partners, registrations};

use crate::TestRegistry;

/// The column names in a `SELECT "t"."a", "t"."b" FROM "t"` statement.
fn columns_of(table: &str, sql: &str) -> Vec<String> {
    let marker = format!("\"{table}\".\"");
    sql.split(&marker)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrated_database() {
    let r = TestRegistry::start().await;
    let db = r.db.client().await.unwrap();
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
