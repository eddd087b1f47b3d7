//! A throwaway PostgreSQL cluster for a test: Debian's `postgresql`
//! binaries, `initdb` in a temporary folder, the server on a free loopback
//! port, stopped and removed when dropped. PostgreSQL refuses to run as
//! root, so as root the cluster belongs to the `postgres` user the package
//! creates. Connections over TCP need the password the cluster is made
//! with (SCRAM), which the test registers as a secret for the log scan.

use std::path::PathBuf;
use std::process::Command;

use super::free_port;

/// A running cluster.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    /// The password of the `as2` superuser.
    pub password: String,
    bin: PathBuf,
}

/// The `bin` folder of the newest installed PostgreSQL.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Starts a cluster; `None` (the test says it is skipped) when
    /// PostgreSQL is not installed, unless `AS2_REQUIRE_POSTGRES` is set
    /// (`.ci/run` sets it), which makes that a failure.
    pub fn start(name: &str) -> Option<Postgres> {
        let Some(bin) = binaries() else {
            assert!(
                std::env::var_os("AS2_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL is missing: apt install postgresql"
            );
            eprintln!("skipped: PostgreSQL is not installed (apt install postgresql)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("as2-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let password = format!("pg-{}-{nanos:09}", std::process::id());
        super::register_secret(&password);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        let postgres = Postgres {
            dir,
            port: free_port(),
            password,
            bin,
        };
        if as_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&postgres.dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        if as_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = postgres.data();
        let output = postgres
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "as2",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        postgres.pg_ctl_start();
        Some(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL program, as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// Starts the server and waits until it takes connections.
    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&output.stdout),
            self.log()
        );
    }

    /// Stops the server (fast: sessions are cut, nothing committed is lost).
    pub fn pg_ctl_stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A client of database `name`.
    pub fn client(&self, name: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=as2 password={} dbname={name}",
                self.port, self.password
            ),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// The URL of database `name` (created if missing), its password in it.
    pub fn database(&self, name: &str) -> String {
        let mut client = self.client("postgres");
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .unwrap()
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
        }
        format!(
            "postgres://as2:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    /// [`Postgres::database`] without the password in the URL.
    pub fn database_without_password(&self, name: &str) -> String {
        self.database(name);
        format!("postgres://as2@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pg_ctl_stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
