//! `breaker`: list, inspect and change circuit breakers fleet-wide, through
//! the Redis a fleet shares (`--redis`) or a process's admin endpoint
//! (`--admin`).
//!
//! Exit codes: 0 on success, 1 when the command failed (unreachable, no such
//! breaker, refused), 2 on bad usage.

mod admin;
mod redis;
mod row;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use row::{Row, Transition};

/// List, inspect and change circuit breakers fleet-wide.
#[derive(Debug, Parser)]
#[command(name = "breaker", version, about)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["redis", "admin"]))]
struct Cli {
    /// The Redis the fleet's breakers share (`redis://`, `rediss://` with TLS
    /// settings from the URL), e.g. redis://127.0.0.1:6379/
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The namespace of the fleet's breakers in Redis [default: breaker,
    /// as `RedisStorage`'s].
    #[arg(long, value_name = "NS", conflicts_with = "admin")]
    namespace: Option<String>,
    /// A process's admin endpoint (`breaker::admin::router`), e.g.
    /// http://127.0.0.1:9000/
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// The admin endpoint's bearer token (needed to open, close or reset).
    #[arg(
        long,
        value_name = "T",
        conflicts_with = "redis",
        env = "BREAKER_ADMIN_TOKEN"
    )]
    token: Option<String>,
    /// JSON instead of a table: one array for list, one object for get and
    /// the manual transitions, one object per line for watch.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every breaker, open ones first.
    List,
    /// One breaker.
    Get {
        /// The breaker's name.
        name: String,
    },
    /// Open a breaker (calls are rejected until its reset timeout).
    Open {
        /// The breaker's name.
        name: String,
    },
    /// Close a breaker.
    Close {
        /// The breaker's name.
        name: String,
    },
    /// Put a breaker in half-open (the next call is its trial).
    HalfOpen {
        /// The breaker's name.
        name: String,
    },
    /// Reset a breaker: closed, counters at zero.
    Reset {
        /// The breaker's name.
        name: String,
    },
    /// Print transitions as they happen, until interrupted.
    Watch,
}

/// Where the breakers are read and changed.
trait Source {
    fn list(&self) -> Result<Vec<Row>, String>;
    fn get(&self, name: &str) -> Result<Row, String>;
    fn apply(&self, name: &str, action: Action) -> Result<Row, String>;
    fn watch(&self, each: &mut dyn FnMut(Transition) -> bool) -> Result<(), String>;
}

/// A manual transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Open,
    Close,
    HalfOpen,
    Reset,
}

impl Action {
    /// The admin endpoint's path segment.
    fn path(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Close => "close",
            Action::HalfOpen => "half-open",
            Action::Reset => "reset",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source: Box<dyn Source> = match (&cli.redis, &cli.admin) {
        (Some(url), _) => {
            match redis::Redis::connect(url, cli.namespace.as_deref().unwrap_or("breaker")) {
                Ok(source) => Box::new(source),
                Err(e) => return fail(&e),
            }
        }
        (None, Some(url)) => Box::new(admin::Admin::new(url, cli.token.clone())),
        (None, None) => unreachable!("clap requires one source"),
    };
    match run(&cli, source.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("breaker: {message}");
    ExitCode::from(1)
}

fn run(cli: &Cli, source: &dyn Source) -> Result<(), String> {
    let action = |name: &str, action| -> Result<(), String> {
        let row = source.apply(name, action)?;
        if cli.json {
            println!("{}", row::json(&row));
        } else {
            println!("{}: {}", row.name, row.state);
        }
        Ok(())
    };
    match &cli.command {
        Command::List => {
            let mut rows = source.list()?;
            row::sort(&mut rows);
            if cli.json {
                println!("{}", row::json(&rows));
            } else {
                print!("{}", row::table(&rows));
            }
        }
        Command::Get { name } => {
            let row = source.get(name)?;
            if cli.json {
                println!("{}", row::json(&row));
            } else {
                print!("{}", row::details(&row));
            }
        }
        Command::Open { name } => action(name, Action::Open)?,
        Command::Close { name } => action(name, Action::Close)?,
        Command::HalfOpen { name } => action(name, Action::HalfOpen)?,
        Command::Reset { name } => action(name, Action::Reset)?,
        Command::Watch => {
            use std::io::Write;
            source.watch(&mut |t| {
                let line = if cli.json {
                    row::json(&t)
                } else {
                    format!("{} {}: {} -> {}", row::utc(t.at_ms), t.name, t.from, t.to)
                };
                let mut out = std::io::stdout().lock();
                // A closed pipe (`breaker watch | head`) ends the watch.
                writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
            })?;
        }
    }
    Ok(())
}
