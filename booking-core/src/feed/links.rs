//! The pump's own connections to each node of a Citus formation, kept open, to read
//! every node's watermark on the node itself.
//!
//! `run_command_on_all_nodes` (the fallback, [`super::nodes`]) opens a new connection to
//! every node on every call (Citus's `citus_tools.c`: `FORCE_NEW_CONNECTION`), and the
//! pump calls it each round, after every commit it is woken for: measured on the dev
//! formation, 72-300 ms a call against 0.7 ms for a routed read, and on a loaded
//! machine about 80 ms of CPU of the three nodes per hold at one hold at a time
//! (BENCHMARKS.md, "Citus formation"). A connection per node kept by the pump reads the
//! same rule ([`NODE_WATERMARK`], the formation's: it also leaves out other databases'
//! prepared transactions) in
//! one round trip.

use super::sql::NODE_WATERMARK;
use crate::database::Cached;
use crate::error::Result;
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

/// SQL: the primary nodes of the formation, the coordinator included (its group 0 is
/// where events written before distribution live), as the coordinator knows them.
const NODES: &str = "SELECT groupid, nodename::text, nodeport FROM pg_dist_node
                      WHERE isactive AND noderole = 'primary' ORDER BY groupid";

/// SQL: this node's watermark, as text.
static WATERMARK_HERE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT ({NODE_WATERMARK})::text"));

/// How long connecting to a node may take before it counts as down for this round.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The pump's connections, one per node, opened when first needed and again after a
/// failure; the settings (user, password, database) are the coordinator's.
pub(crate) struct NodeLinks {
    config: tokio_postgres::Config,
    open: HashMap<i32, tokio_postgres::Client>,
}

impl NodeLinks {
    pub(crate) fn new(config: tokio_postgres::Config) -> NodeLinks {
        NodeLinks {
            config,
            open: HashMap::new(),
        }
    }

    /// Each node's group id and watermark (an `xid8` as text), read on that node. A
    /// node that cannot be reached is left out, as with `run_command_on_all_nodes`:
    /// its events wait, every other node's are read.
    pub(crate) async fn watermarks<C: GenericClient>(
        &mut self,
        coordinator: &C,
    ) -> Result<(Vec<i32>, Vec<String>)> {
        let (mut nodes, mut wms) = (Vec::new(), Vec::new());
        for row in coordinator.cq(NODES, &[]).await? {
            let (group, host, port): (i32, String, i32) = (row.get(0), row.get(1), row.get(2));
            match self.read(group, &host, port).await {
                Some(wm) => {
                    nodes.push(group);
                    wms.push(wm);
                }
                None => {
                    self.open.remove(&group);
                }
            }
        }
        Ok((nodes, wms))
    }

    async fn read(&mut self, group: i32, host: &str, port: i32) -> Option<String> {
        if self.open.get(&group).is_none_or(|c| c.is_closed()) {
            let client = self.connect(host, port).await?;
            self.open.insert(group, client);
        }
        let client = self.open.get(&group)?;
        let row = client.query_one(WATERMARK_HERE.as_str(), &[]).await.ok()?;
        row.get(0)
    }

    async fn connect(&self, host: &str, port: i32) -> Option<tokio_postgres::Client> {
        let mut node = tokio_postgres::Config::new();
        node.host(host)
            .port(u16::try_from(port).ok()?)
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("booking-feed-watermark");
        if let Some(user) = self.config.get_user() {
            node.user(user);
        }
        if let Some(password) = self.config.get_password() {
            node.password(password);
        }
        if let Some(db) = self.config.get_dbname() {
            node.dbname(db);
        }
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, node.connect(tokio_postgres::NoTls))
                .await
                .ok()?
                .ok()?;
        // Ends when the client is dropped or the node goes away.
        tokio::spawn(connection);
        Some(client)
    }
}
