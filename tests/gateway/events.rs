//! WatchEvents against the real gateway: the local-mode loop (emulator
//! webhooks into the gateway), cursors, owner isolation, and two gateways
//! sharing one PostgreSQL database.

use std::collections::BTreeSet;
use std::time::Duration;

use filegate::pb::v1 as pb;
use support::content::data;
use support::gateway::{TestGateway, delivery};
use support::poll_until;
use support::postgres::PostgresDatabase;
use support::rpc::Rpc;
use tonic::{Code, Streaming};

/// Longest wait for an event that must come.
const PATIENCE: Duration = Duration::from_secs(15);

/// WatchEvents as `sub` after `after`, with payloads.
async fn watch(gw: &TestGateway, sub: &str, after: i64) -> Streaming<pb::Event> {
    gw.watch_events(sub, after, true).await.expect("watch")
}

async fn next(stream: &mut Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time")
        .expect("no error")
        .expect("the stream goes on")
}

/// An fp.upload delivery for a file under `owner`'s upload path.
fn upload_delivery(id: &str, owner: &str) -> String {
    let text = serde_json::json!({
        "url": format!("https://cdn.filestackcontent.com/h{}", id.replace('-', "")),
        "key": format!("user-uploads/{owner}/{id}.bin"), "size": 1,
    });
    delivery(id, "fp.upload", text)
}

/// A 500-byte upload as `sub`.
async fn upload(gw: &TestGateway, sub: &str) -> pb::Document {
    gw.upload(sub, "f.bin", data(500)).await
}

#[tokio::test]
async fn an_upload_through_the_gateway_streams_fp_upload_and_a_delete_fp_delete() {
    let gw = TestGateway::start().await;
    let mut events = watch(&gw, "alice", 0).await;
    let doc = upload(&gw, "alice").await;
    let uploaded = next(&mut events).await;
    assert_eq!(uploaded.action, "fp.upload");
    assert_eq!(uploaded.handle, doc.handle);
    assert!(uploaded.document_id.is_empty() || uploaded.document_id == doc.id);
    assert!(uploaded.payload_json.contains(&doc.handle));
    assert!(uploaded.receive_time.is_some());
    gw.delete("alice", &doc.id).await.expect("delete");
    let deleted = next(&mut events).await;
    assert_eq!(deleted.action, "fp.delete");
    assert_eq!(deleted.handle, doc.handle);
    assert!(deleted.id > uploaded.id);
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn resuming_from_the_last_id_loses_nothing_and_repeats_nothing() {
    let gw = TestGateway::start().await;
    for id in ["r-1", "r-2", "r-3"] {
        assert_eq!(gw.deliver(&upload_delivery(id, "alice")).await, 200);
    }
    let mut events = watch(&gw, "alice", 0).await;
    let mut last = 0;
    for expected in ["r-1", "r-2", "r-3"] {
        let event = next(&mut events).await;
        assert_eq!(event.delivery_id, expected);
        assert!(event.id > last);
        last = event.id;
    }
    drop(events);
    for id in ["r-4", "r-5"] {
        assert_eq!(gw.deliver(&upload_delivery(id, "alice")).await, 200);
    }
    let mut events = watch(&gw, "alice", last).await;
    assert_eq!(next(&mut events).await.delivery_id, "r-4");
    assert_eq!(next(&mut events).await.delivery_id, "r-5");
    assert_eq!(gw.deliver(&upload_delivery("r-6", "alice")).await, 200);
    assert_eq!(
        next(&mut events).await.delivery_id,
        "r-6",
        "live, no repeat"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_caller_receives_only_the_events_of_their_own_documents() {
    let gw = TestGateway::start().await;
    let mut bob = watch(&gw, "bob", 0).await;
    assert_eq!(gw.deliver(&upload_delivery("o-1", "alice")).await, 200);
    assert_eq!(gw.deliver(&upload_delivery("o-2", "bob")).await, 200);
    let nobody = serde_json::json!({ "url": "https://cdn.filestackcontent.com/hUnplaced" });
    assert_eq!(gw.deliver(&delivery("o-3", "fp.upload", nobody)).await, 200);
    assert_eq!(gw.deliver(&upload_delivery("o-4", "bob")).await, 200);
    assert_eq!(next(&mut bob).await.delivery_id, "o-2");
    assert_eq!(next(&mut bob).await.delivery_id, "o-4");
    let mut alice = watch(&gw, "alice", 0).await;
    assert_eq!(next(&mut alice).await.delivery_id, "o-1");
    assert_eq!(gw.deliver(&upload_delivery("o-5", "alice")).await, 200);
    assert_eq!(next(&mut alice).await.delivery_id, "o-5");
    gw.stop().await;
}

#[tokio::test]
async fn a_negative_cursor_or_a_missing_token_is_refused() {
    let gw = TestGateway::start().await;
    let status = gw
        .watch_events("alice", -1, false)
        .await
        .expect_err("negative cursor");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = gw
        .client()
        .await
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    gw.stop().await;
}

#[tokio::test]
async fn the_payload_comes_only_when_asked_for() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.deliver(&upload_delivery("p-1", "alice")).await, 200);
    let mut events = gw.watch_events("alice", 0, false).await.expect("watch");
    let event = next(&mut events).await;
    assert_eq!(event.delivery_id, "p-1");
    assert!(event.payload_json.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_backlog_larger_than_a_read_batch_and_the_stream_buffer_arrives_whole_and_in_order() {
    let gw = TestGateway::start().await;
    let ids: Vec<String> = (0..250).map(|i| format!("k-{i:03}")).collect();
    for id in &ids {
        assert_eq!(gw.deliver(&upload_delivery(id, "alice")).await, 200);
    }
    let mut events = watch(&gw, "alice", 0).await;
    for id in &ids {
        assert_eq!(&next(&mut events).await.delivery_id, id);
    }
    assert_eq!(gw.deliver(&upload_delivery("k-last", "alice")).await, 200);
    assert_eq!(next(&mut events).await.delivery_id, "k-last");
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_ends_with_unavailable_when_the_gateway_stops() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.deliver(&upload_delivery("s-1", "alice")).await, 200);
    let mut events = watch(&gw, "alice", 0).await;
    assert_eq!(next(&mut events).await.delivery_id, "s-1");
    tokio::time::timeout(PATIENCE, gw.stop())
        .await
        .expect("an open stream does not hold the gateway up");
    let ended = tokio::time::timeout(PATIENCE, events.message())
        .await
        .expect("the stream ends");
    assert_eq!(ended.expect_err("an error").code(), Code::Unavailable);
}

/// Delivers `ids` to `gw`, all at once.
async fn deliver_all(gw: &TestGateway, ids: &[String]) {
    let sends = ids.iter().map(|id| {
        let body = upload_delivery(id, "carol");
        async move { gw.deliver(&body).await }
    });
    for status in futures_util::future::join_all(sends).await {
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn two_gateways_on_one_postgres_share_events_in_order_and_resume_without_loss() {
    let Some(database) = PostgresDatabase::for_test().await else {
        return;
    };
    let a = TestGateway::start_on(&database.url, &[]).await;
    let b = TestGateway::start_on(&database.url, &[]).await;
    let mut watcher = watch(&a, "carol", 0).await;
    let to_a: Vec<String> = (0..20).map(|i| format!("a-{i}")).collect();
    let to_b: Vec<String> = (0..20).map(|i| format!("b-{i}")).collect();
    tokio::join!(deliver_all(&a, &to_a), deliver_all(&b, &to_b));
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for _ in 0..40 {
        let event = next(&mut watcher).await;
        assert!(event.id > last, "ids strictly increase");
        last = event.id;
        seen.insert(event.delivery_id);
    }
    let expected: BTreeSet<String> = to_a.iter().chain(&to_b).cloned().collect();
    assert_eq!(seen, expected, "every delivery, to either gateway, once");
    drop(watcher);

    for id in ["late-1", "late-2", "late-3"] {
        assert_eq!(b.deliver(&upload_delivery(id, "carol")).await, 200);
    }
    let mut watcher = watch(&a, "carol", last).await;
    for expected in ["late-1", "late-2", "late-3"] {
        assert_eq!(next(&mut watcher).await.delivery_id, expected);
    }
    assert_eq!(b.deliver(&upload_delivery("late-4", "carol")).await, 200);
    assert_eq!(next(&mut watcher).await.delivery_id, "late-4");
    drop(watcher);
    a.stop().await;
    b.stop().await;
    database.drop_database().await;
}

/// Asks `gw` for the document until `seen` holds for the answer (bounded:
/// another replica's change arrives as a notification, asynchronously).
async fn until(
    gw: &TestGateway,
    id: &str,
    seen: impl Fn(&Result<pb::Document, tonic::Status>) -> bool,
) {
    poll_until(PATIENCE, "the other replica's change seen", || async {
        seen(&gw.get_document("carol", id).await)
    })
    .await;
}

/// Two replicas on one new database: `a`, and `b` whose cached rows never
/// expire during a test, so only a notification can make it read a row
/// again; `None` when the test is skipped for want of PostgreSQL.
async fn replicas() -> Option<(PostgresDatabase, TestGateway, TestGateway)> {
    let database = PostgresDatabase::for_test().await?;
    let a = TestGateway::start_on(&database.url, &[]).await;
    let b = TestGateway::start_on(&database.url, &["--document-cache-ttl-secs", "3600"]).await;
    Some((database, a, b))
}

#[tokio::test]
async fn two_gateways_on_one_postgres_evict_each_others_changed_and_deleted_documents() {
    let Some((database, a, b)) = replicas().await else {
        return;
    };
    let doc = upload(&a, "carol").await;
    let cached = b.read_until_cached("carol", &doc.id).await;
    assert_eq!(cached.size_bytes, 500);

    let overwrite = serde_json::json!({
        "url": format!("https://cdn.filestackcontent.com/{}", doc.handle),
        "mimetype": "text/plain", "size": 777,
    });
    let overwrite = delivery("ow-replica", "fp.overwrite", overwrite);
    assert_eq!(a.deliver(&overwrite).await, 200);
    until(&b, &doc.id, |got| {
        got.as_ref().is_ok_and(|d| d.size_bytes == 777)
    })
    .await;

    a.delete("carol", &doc.id).await.expect("delete on a");
    until(&b, &doc.id, |got| {
        got.as_ref()
            .is_err_and(|status| status.code() == Code::NotFound)
    })
    .await;

    a.stop().await;
    b.stop().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_replica_that_loses_its_listener_connection_forgets_its_cache_and_listens_again() {
    let Some((database, a, b)) = replicas().await else {
        return;
    };
    let doc = upload(&a, "carol").await;
    b.read_until_cached("carol", &doc.id).await;

    // While no new connection to the database is allowed, every LISTEN
    // connection on it (both replicas') dies, and the row is deleted and the
    // deletion notified as `Database::delete_document` does: nobody listens,
    // so b never hears of it, and must still stop serving the row it cached.
    let db_admin = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let mut conn = db_admin.acquire().await.expect("a connection");
    let server = sqlx::PgPool::connect(database.server_url())
        .await
        .expect("connect");
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await
        .expect("name");
    let allow = |yes: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {yes}");
    sqlx::query(sqlx::AssertSqlSafe(allow(false)))
        .execute(&server)
        .await
        .expect("refuse connections");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("terminate listeners");
    assert!(killed.len() >= 2 && killed.iter().all(|k| *k), "{killed:?}");
    sqlx::query(
        "WITH gone AS (DELETE FROM documents WHERE id = $1 RETURNING id) \
         SELECT pg_notify('filegate_documents', id) FROM gone",
    )
    .bind(&doc.id)
    .execute(&mut *conn)
    .await
    .expect("delete");
    sqlx::query(sqlx::AssertSqlSafe(allow(true)))
        .execute(&server)
        .await
        .expect("allow connections");
    drop(conn);
    db_admin.close().await;
    server.close().await;

    until(&b, &doc.id, |got| {
        got.as_ref()
            .is_err_and(|status| status.code() == Code::NotFound)
    })
    .await;

    // Listening again, b caches again.
    b.wait_for_cache_live().await;
    let other = upload(&a, "carol").await;
    b.read_until_cached("carol", &other.id).await;

    a.stop().await;
    b.stop().await;
    database.drop_database().await;
}
