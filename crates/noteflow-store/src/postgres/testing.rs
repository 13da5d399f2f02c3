//! A database of its own for each test, on the PostgreSQL server named by
//! `NOTEFLOW_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped when
//! the test is done with it. Fails fast, saying what to do, when the server cannot be reached.

use std::time::Duration;

use tokio_postgres::NoTls;

use super::{PostgresOptions, PostgresStore};

/// The environment variable naming the PostgreSQL server tests use.
pub const URL_VAR: &str = "NOTEFLOW_TEST_POSTGRES_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The URL of the test server's administrative database.
pub fn server_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `dbname`.
pub fn with_database(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{dbname}?{query}"),
        None => format!("{host_part}/{dbname}"),
    }
}

/// Runs `sql` on the administrative database; panics with a clear message when the server cannot be
/// reached.
async fn admin(sql: &str) {
    let url = server_url();
    let mut config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("{URL_VAR}={url} is not a PostgreSQL URL: {e}"));
    config.connect_timeout(CONNECT_TIMEOUT);
    let connect = tokio::time::timeout(CONNECT_TIMEOUT * 2, config.connect(NoTls));
    let (client, connection) = match connect.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url} ({e}); these tests need a PostgreSQL server: \
             start one, or point {URL_VAR} at one"
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within {:?}; these tests need a PostgreSQL server: \
             start one, or point {URL_VAR} at one",
            CONNECT_TIMEOUT * 2
        ),
    };
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = driver.await;
}

/// A fresh, empty database, dropped (with every connection to it) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("nf_test_{}", uuid::Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}")).await;
        let url = with_database(&server_url(), &name);
        TestDatabase { name, url }
    }

    /// The database's URL, for a store or a `noteflow serve` process.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store on this database, with a small pool.
    pub async fn store(&self) -> PostgresStore {
        let options = PostgresOptions {
            pool_size: 4,
            ..PostgresOptions::default()
        };
        PostgresStore::connect(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("cannot open a store on {}: {e}", self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: drop the database from a thread with a
        // runtime of its own. WITH (FORCE) ends the connections that stores still hold.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database")
                .block_on(admin(&sql));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "nf_x"),
            "postgres://postgres@127.0.0.1:5432/nf_x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "nf_x"),
            "postgres://u@h/nf_x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "nf_x"),
            "postgres://u@h/nf_x"
        );
    }
}
