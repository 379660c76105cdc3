//! Test databases on a Citus formation (`scripts/citus.sh`): when DATABASE_URL names a
//! coordinator (its database has the `citus` extension), a test's database is made on
//! every node, with the extension, and the coordinator learns its workers. The
//! migrations then distribute the schema (V13).

use booking_core::tokio_postgres::{self, Client, NoTls};

/// `true` when `admin` is a Citus coordinator's database.
pub async fn is_coordinator(admin: &Client) -> bool {
    admin
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'citus'", &[])
        .await
        .expect("read pg_extension")
        .is_some()
}

/// Makes database `name` ready on every node of the formation `admin` coordinates:
/// created on each worker with the extension, then (on the coordinator, where the
/// caller created it already) the extension, the coordinator's address and each worker.
pub async fn prepare(admin_config: &tokio_postgres::Config, admin: &Client, name: &str) {
    // One at a time: two databases joining their workers at once fail now and then
    // ("failure on connection marked as essential").
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let workers: Vec<(String, i32)> = admin
        .query(
            "SELECT nodename, nodeport FROM pg_dist_node
              WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeid",
            &[],
        )
        .await
        .expect("read pg_dist_node")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!workers.is_empty(), "the coordinator has no workers");
    for (host, port) in &workers {
        let mut config = on_node(admin_config, host, *port as u16);
        // Citus 13 passes the coordinator's CREATE DATABASE on to its workers; an
        // older one does not.
        if !exists(&config, name).await {
            run(&config, &format!("CREATE DATABASE {name}")).await;
        }
        config.dbname(name);
        run(
            &config,
            "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS citus",
        )
        .await;
    }
    let (host, port) = coordinator_address(admin_config);
    let mut config = admin_config.clone();
    config.dbname(name);
    let mut setup = vec![
        "SET client_min_messages = warning".to_owned(),
        "CREATE EXTENSION IF NOT EXISTS citus".to_owned(),
        format!("SELECT citus_set_coordinator_host('{host}', {port})"),
    ];
    setup.extend(workers.iter().map(|(h, p)| {
        format!(
            "SELECT citus_add_node('{h}', {p}) WHERE NOT EXISTS
                       (SELECT 1 FROM pg_dist_node WHERE nodename = '{h}' AND nodeport = {p})"
        )
    }));
    run(&config, &setup.join("; ")).await;
}

/// `config` (its user, password, database) for the node at `host:port` alone.
fn on_node(config: &tokio_postgres::Config, host: &str, port: u16) -> tokio_postgres::Config {
    let mut node = tokio_postgres::Config::new();
    node.host(host).port(port);
    if let Some(user) = config.get_user() {
        node.user(user);
    }
    if let Some(password) = config.get_password() {
        node.password(password);
    }
    if let Some(db) = config.get_dbname() {
        node.dbname(db);
    }
    node
}

fn coordinator_address(config: &tokio_postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("a Citus coordinator is reached over TCP, not {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

async fn exists(config: &tokio_postgres::Config, name: &str) -> bool {
    let (client, conn) = config.connect(NoTls).await.expect("connect to a worker");
    tokio::spawn(conn);
    client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("read pg_database")
        .is_some()
}

async fn run(config: &tokio_postgres::Config, sql: &str) {
    let (client, conn) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect for {sql}: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error().map(|d| d.message())));
}
