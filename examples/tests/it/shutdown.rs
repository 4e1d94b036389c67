//! Shutdown with a client that never finishes its request.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::*;

#[tokio::test]
async fn a_stalled_upload_does_not_keep_the_server_from_stopping() {
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let mut server = Server::start(
        &db,
        &github,
        &codegen,
        "all",
        &[("SHUTDOWN_GRACE_SECONDS", "1")],
    )
    .await;
    // Complete headers, then a tenth of the announced body, then silence.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/webhooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: ping\r\nx-github-delivery: stalled\r\ncontent-length: 1000\r\n\r\n{{\"zen\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = server.terminate_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not stop within 10 s of SIGTERM ({status:?}):\n{}",
        server.logs()
    );
    drop(stalled);
    db.drop_db().await;
}
