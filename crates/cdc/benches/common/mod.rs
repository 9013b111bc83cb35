//! What the CDC benches share.

use tokio_postgres::Client;

/// A session on the local stack's PostgreSQL.
pub(crate) async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the local stack's PostgreSQL (run `contrail stack up`)");
    tokio::spawn(conn);
    client
}
