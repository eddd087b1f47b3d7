//! The shared state store: PostgreSQL, for several instances serving one
//! station (`--state-url postgres://…`). The same operations as SQLite, with
//! the same meaning under concurrency across processes:
//!
//! - compare-and-swap is one conditional `INSERT … ON CONFLICT DO NOTHING`
//!   or `UPDATE … WHERE value = expected`, so of two writers one wins;
//! - recording a received message inserts its `commit` entries with
//!   `ON CONFLICT DO NOTHING` first: a copy racing it on another instance
//!   waits for that row's transaction and then finds it, and is told so;
//! - owed MDNs are leased with `FOR UPDATE SKIP LOCKED`, so two instances
//!   never take the same one, and a lease left by a dead instance runs out.
//!
//! Every commit is durable when it returns (PostgreSQL's own WAL flush);
//! the schema is created and migrated by refinery on start.

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

use super::{
    DeliveryRecord, DeliveryRow, Dump, MdnDelivery, OwedMdn, OwedMdnRecord, StateError, StateResult,
};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Client = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Connections at most in the pool of one process.
const POOL_SIZE: u32 = 16;

/// The state in a PostgreSQL database.
pub struct PostgresStore {
    /// Always `Some` until dropped.
    pool: Option<Pool>,
    /// The URL without its password, for messages.
    shown: String,
}

/// `url` with its password replaced by `***` (a URL, or libpq's
/// `key=value` form).
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// A PostgreSQL error as the store reports it: unreachable when the
/// connection is gone, cannot be made, or the server is shutting down or
/// starting (SQLSTATE classes 08 and 57P); failed otherwise.
fn classify(e: postgres::Error) -> StateError {
    let unavailable = match e.code() {
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        None => {
            let mut source = std::error::Error::source(&e);
            let mut io = false;
            while let Some(cause) = source {
                io |= cause.is::<std::io::Error>();
                source = cause.source();
            }
            e.is_closed() || io
        }
    };
    // The server's own message, which the error's Display leaves out.
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    if unavailable {
        StateError::Unavailable(text)
    } else {
        StateError::Failed(text)
    }
}

/// The advisory lock the instances starting at once take around migrations.
const MIGRATION_LOCK: i64 = 0x4153_325f_6d69_6772; // "AS2_migr"

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`),
    /// with `password` when the URL has none, and brings its schema up to date.
    pub fn open(url: &str, password: Option<&str>) -> anyhow::Result<Self> {
        let shown = masked(url);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("the state URL {shown} is not a PostgreSQL URL: {e}"))?;
        if let Some(password) = password
            && config.get_password().is_none()
        {
            config.password(password);
        }
        config.application_name("as2-harness");
        config.connect_timeout(std::time::Duration::from_secs(5));
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(5))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot reach the state database {shown}: {e}"))?;
        let store = PostgresStore {
            pool: Some(pool),
            shown,
        };
        let mut client = store.client().map_err(|e| anyhow::anyhow!("{e}"))?;
        let migrating = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("migrating the state database {}: {e}", store.shown)
        };
        // Several instances may start at once: one migrates, the others wait.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| migrating(&e))?;
        let migrated = embedded::migrations::runner()
            .set_migration_table_name("as2_schema_history")
            .run(&mut *client);
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| migrating(&e))?;
        migrated.map_err(|e| migrating(&e))?;
        drop(client);
        Ok(store)
    }

    /// The URL, its password masked.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn client(&self) -> StateResult<Client> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StateError::Unavailable("the store is closing".into()))?;
        pool.get()
            .map_err(|e| StateError::Unavailable(format!("{}: {e}", self.shown)))
    }

    /// Runs `work` in one transaction, committed if it returns `Ok`.
    fn transaction<R>(
        &self,
        work: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<R, postgres::Error>,
    ) -> StateResult<R> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(classify)?;
        let result = work(&mut tx).map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(result)
    }

    /// Writes every row of `dump` in one transaction, into a database that
    /// holds no state yet.
    pub fn load(&self, dump: &Dump) -> anyhow::Result<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM state) + (SELECT count(*) FROM deliveries)
                      + (SELECT count(*) FROM outbound_mdns)",
                &[],
            )?
            .get(0);
        if held > 0 {
            anyhow::bail!(
                "{} already holds state ({held} rows): copy into a new, empty database",
                self.shown
            );
        }
        let insert =
            tx.prepare("INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)")?;
        for (key, value, updated_at) in &dump.state {
            tx.execute(&insert, &[key, value, updated_at])?;
        }
        let insert = tx.prepare(
            "INSERT INTO deliveries (partner, message_id, staged, file_name, path, bytes, state, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for d in &dump.deliveries {
            tx.execute(
                &insert,
                &[
                    &d.partner,
                    &d.message_id,
                    &d.staged,
                    &d.file_name,
                    &d.path,
                    &d.bytes,
                    &d.state,
                    &d.received_at,
                ],
            )?;
        }
        let insert = tx.prepare(
            "INSERT INTO outbound_mdns (id, partner, original_message_id, url, headers, body, state,
                 attempts, next_attempt_at, last_error, created_at, settled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )?;
        for m in &dump.owed_mdns {
            let attempts = i32::try_from(m.attempts).unwrap_or(i32::MAX);
            tx.execute(
                &insert,
                &[
                    &m.id,
                    &m.partner,
                    &m.original_message_id,
                    &m.url,
                    &m.headers,
                    &m.body,
                    &m.state,
                    &attempts,
                    &m.next_attempt_at,
                    &m.last_error,
                    &m.created_at,
                    &m.settled_at,
                ],
            )?;
        }
        // New rows continue after the copied ids.
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('outbound_mdns', 'id'),
                           GREATEST((SELECT max(id) FROM outbound_mdns), 1))",
            &[],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        let row = self
            .client()?
            .query_opt("SELECT value FROM state WHERE key = $1", &[&key])
            .map_err(classify)?;
        Ok(row.map(|row| row.get(0)))
    }

    pub fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        self.set_all(&[(key.to_string(), value.to_vec())])
    }

    pub fn set_all(&self, entries: &[(String, Vec<u8>)]) -> StateResult<()> {
        self.transaction(|tx| {
            let upsert = tx.prepare(
                "INSERT INTO state (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     updated_at = extract(epoch FROM now())::BIGINT",
            )?;
            for (key, value) in entries {
                tx.execute(&upsert, &[key, value])?;
            }
            Ok(())
        })
    }

    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        let mut client = self.client()?;
        let changed = match expected {
            None => client.execute(
                "INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            ),
            Some(expected) => client.execute(
                "UPDATE state SET value = $3, updated_at = extract(epoch FROM now())::BIGINT
                 WHERE key = $1 AND value = $2",
                &[&key, &expected, &value],
            ),
        }
        .map_err(classify)?;
        Ok(changed == 1)
    }

    pub fn delete(&self, key: &str) -> StateResult<()> {
        self.client()?
            .execute("DELETE FROM state WHERE key = $1", &[&key])
            .map_err(classify)?;
        Ok(())
    }

    pub fn list_keys(&self, prefix: &str) -> StateResult<Vec<String>> {
        // The key column sorts bytewise ("C"), as SQLite does.
        let rows = self
            .client()?
            .query(
                "SELECT key FROM state WHERE starts_with(key, $1) ORDER BY key",
                &[&prefix],
            )
            .map_err(classify)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub fn record_received(
        &self,
        commit: &[(String, Vec<u8>)],
        deliveries: &[DeliveryRecord],
        mdn: Option<&OwedMdnRecord>,
    ) -> StateResult<Option<Option<i64>>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(classify)?;
        for (key, value) in commit {
            // A copy recorded by another instance first: its row exists (or
            // its transaction holds it, and this waits for it to commit).
            let inserted = tx
                .execute(
                    "INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[key, value],
                )
                .map_err(classify)?;
            if inserted == 0 {
                tx.rollback().map_err(classify)?;
                return Ok(None);
            }
        }
        for delivery in deliveries {
            let bytes = i64::try_from(delivery.bytes).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO deliveries (partner, message_id, staged, file_name, bytes, path, state)
                 VALUES ($1, $2, $3, $4, $5, $6, 'staged')
                 ON CONFLICT (partner, message_id) DO NOTHING",
                &[
                    &delivery.partner,
                    &delivery.message_id,
                    &delivery.staged,
                    &delivery.file_name,
                    &bytes,
                    &delivery.path,
                ],
            )
            .map_err(classify)?;
        }
        let owed = match mdn {
            Some(mdn) => {
                let row = tx
                    .query_one(
                        "INSERT INTO outbound_mdns (partner, original_message_id, url, headers, body, state)
                         VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING id",
                        &[&mdn.partner, &mdn.original_message_id, &mdn.url, &mdn.headers_json, &mdn.body],
                    )
                    .map_err(classify)?;
                Some(row.get::<_, i64>(0))
            }
            None => None,
        };
        tx.commit().map_err(classify)?;
        Ok(Some(owed))
    }

    pub fn delivery(&self, partner: &str, message_id: &str) -> StateResult<Option<DeliveryRow>> {
        let row = self
            .client()?
            .query_opt(
                "SELECT staged, file_name, path, state FROM deliveries
                 WHERE partner = $1 AND message_id = $2",
                &[&partner, &message_id],
            )
            .map_err(classify)?;
        Ok(row.map(|row| DeliveryRow {
            staged: row.get(0),
            file_name: row.get(1),
            path: row.get(2),
            delivered: row.get::<_, String>(3) == "delivered",
        }))
    }

    pub fn set_delivery_path(
        &self,
        partner: &str,
        message_id: &str,
        path: &str,
    ) -> StateResult<()> {
        self.client()?
            .execute(
                "UPDATE deliveries SET path = $3 WHERE partner = $1 AND message_id = $2",
                &[&partner, &message_id, &path],
            )
            .map_err(classify)?;
        Ok(())
    }

    pub fn mark_delivered(&self, partner: &str, message_id: &str) -> StateResult<()> {
        self.client()?
            .execute(
                "UPDATE deliveries SET state = 'delivered' WHERE partner = $1 AND message_id = $2",
                &[&partner, &message_id],
            )
            .map_err(classify)?;
        Ok(())
    }

    /// Nothing: other instances may hold leases right now. A lease a dead
    /// instance held runs out by itself ([`Self::lease_due_mdns`]).
    pub fn release_mdn_leases(&self, _now: i64) -> StateResult<()> {
        Ok(())
    }

    pub fn staged_deliveries(&self) -> StateResult<Vec<(String, String, String)>> {
        let rows = self
            .client()?
            .query(
                "SELECT partner, message_id, staged FROM deliveries WHERE state = 'staged' ORDER BY seq",
                &[],
            )
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    pub fn mdn_delivery(
        &self,
        partner: &str,
        message_id: &str,
    ) -> StateResult<Option<MdnDelivery>> {
        let row = self
            .client()?
            .query_opt(
                "SELECT state, attempts, last_error, url FROM outbound_mdns
                 WHERE partner = $1 AND original_message_id = $2 ORDER BY id DESC LIMIT 1",
                &[&partner, &message_id],
            )
            .map_err(classify)?;
        Ok(row.map(|row| MdnDelivery {
            state: row.get(0),
            attempts: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
            last_error: row.get(2),
            url: row.get(3),
        }))
    }

    pub fn lease_due_mdns(&self, now: i64, lease: i64) -> StateResult<Vec<OwedMdn>> {
        let until = now + lease;
        let rows = self
            .client()?
            .query(
                "UPDATE outbound_mdns SET next_attempt_at = $2
                 WHERE id IN (
                     SELECT id FROM outbound_mdns
                     WHERE state = 'pending' AND next_attempt_at <= $1
                     ORDER BY id LIMIT 64
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, url, headers, body, attempts, partner",
                &[&now, &until],
            )
            .map_err(classify)?;
        let mut due: Vec<OwedMdn> = rows
            .iter()
            .map(|row| OwedMdn {
                id: row.get(0),
                url: row.get(1),
                headers: serde_json::from_str(row.get::<_, &str>(2)).unwrap_or_default(),
                body: row.get(3),
                attempts: u32::try_from(row.get::<_, i32>(4)).unwrap_or_default(),
                partner: row.get(5),
            })
            .collect();
        due.sort_by_key(|mdn| mdn.id);
        Ok(due)
    }

    pub fn mdn_attempted(
        &self,
        id: i64,
        error: Option<&str>,
        now: i64,
    ) -> StateResult<&'static str> {
        self.transaction(|tx| {
            let attempts: i32 = tx
                .query_one(
                    "SELECT attempts FROM outbound_mdns WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .get(0);
            let (attempts, next_attempt_at, state) =
                super::after_attempt(u32::try_from(attempts).unwrap_or_default(), error, now);
            let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
            tx.execute(
                "UPDATE outbound_mdns SET attempts = $2, state = $3, last_error = $4,
                     next_attempt_at = COALESCE($5::BIGINT, next_attempt_at),
                     settled_at = CASE WHEN $3::TEXT = 'pending' THEN NULL ELSE $6::BIGINT END
                 WHERE id = $1",
                &[&id, &attempts, &state, &error, &next_attempt_at, &now],
            )?;
            Ok(state)
        })
    }
}

impl Drop for PostgresStore {
    /// Closes the connections on a thread of their own: closing one blocks
    /// on the client's runtime, which may not happen on an async thread,
    /// and the last handle on a station may well be dropped on one.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            masked("postgres://as2:s3cret@db.example:5432/as2"),
            "postgres://as2:***@db.example:5432/as2"
        );
        assert_eq!(
            masked("postgres://as2@127.0.0.1/as2"),
            "postgres://as2@127.0.0.1/as2"
        );
        assert_eq!(masked("postgresql://u:p:q@h"), "postgresql://u:***@h");
        assert_eq!(masked("host=/tmp dbname=x"), "host=/tmp dbname=x");
        assert_eq!(
            masked("host=/tmp password=pw dbname=x"),
            "host=/tmp password=*** dbname=x"
        );
    }
}
