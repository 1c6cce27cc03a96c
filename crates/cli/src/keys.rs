//! `ferroserve keys`: the API key file `serve --api-keys` reads. `add` makes a random key,
//! appends its SHA-256 with a name, scopes and models, and prints the key once (it is not
//! kept anywhere); `list` shows names, scopes and models; `remove` deletes an entry. A running
//! server picks up each change within a second.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ferroserve_server::access::keys::{Credential, KeyEntry, entry_toml, generate_key};
use ferroserve_server::access::rate::Rate;
use ferroserve_server::access::{KeySet, Scope};

/// What to do with the key file.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new key, store its hash in the file (created if missing) and print the key.
    Add(AddArgs),
    /// List the keys' names, scopes and models.
    List(FileArg),
    /// Remove the key with this name.
    Remove(RemoveArgs),
}

/// The key file.
#[derive(Debug, Args)]
pub(crate) struct FileArg {
    /// The key file.
    #[arg(long, env = "FERROSERVE_API_KEYS")]
    file: PathBuf,
}

/// `keys add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    file: FileArg,
    /// The key's name, shown in logs, metrics and audit lines instead of the key.
    #[arg(long)]
    name: String,
    /// What it may do: infer, read, admin, feedback (repeat or separate with commas).
    #[arg(long = "scope", value_delimiter = ',', required = true, value_parser = parse_scope)]
    scopes: Vec<Scope>,
    /// Limit inference to these models (repeat or separate with commas); default: every model.
    #[arg(long = "model", value_delimiter = ',')]
    models: Vec<String>,
    /// Instead of making a key: let in clients whose certificate (mutual TLS, --tls-client-ca)
    /// has this subject (`CN=app, O=Acme`) or common name. Nothing is printed.
    #[arg(long)]
    subject: Option<String>,
    /// Its own rate limit, in requests per second (default: the server's --rate-limit).
    #[arg(long, value_name = "RPS")]
    rate: Option<f64>,
    /// Requests at once after an idle spell, with --rate (default: one second's worth).
    #[arg(long, value_name = "N", requires = "rate")]
    burst: Option<f64>,
}

/// `keys remove`.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    file: FileArg,
    /// The name of the key to remove.
    #[arg(long)]
    name: String,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

/// Runs one `keys` command.
pub(crate) fn run(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add(args) => add(args),
        KeysCommand::List(args) => list(&args.file),
        KeysCommand::Remove(args) => remove(args),
    }
}

/// The keys in `path`; none when the file does not exist yet.
fn read(path: &Path) -> anyhow::Result<(String, KeySet)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("--file {}", path.display())),
    };
    let keys = KeySet::parse(&text)
        .map_err(|message| anyhow::anyhow!("--file {}: {message}", path.display()))?;
    Ok((text, keys))
}

fn add(args: &AddArgs) -> anyhow::Result<()> {
    let path = &args.file.file;
    let (_, keys) = read(path)?;
    anyhow::ensure!(
        !args.name.is_empty() && !keys.entries().iter().any(|k| *k.name == *args.name),
        "--name '{}': {}",
        args.name,
        if args.name.is_empty() {
            "empty"
        } else {
            "a key of that name is in the file already"
        }
    );
    let (key, mut entry) = match &args.subject {
        Some(subject) => (
            None,
            KeyEntry::for_certificate(&args.name, subject, &args.scopes),
        ),
        None => {
            let (key, hash) = generate_key();
            (Some(key), KeyEntry::new(&args.name, hash, &args.scopes))
        }
    };
    if !args.models.is_empty() {
        entry = entry.with_models(&args.models);
    }
    if let Some(rps) = args.rate {
        let rate = Rate::new(rps, args.burst).map_err(|e| anyhow::anyhow!("--rate: {e}"))?;
        entry = entry.with_rate(rate);
    }
    append_private(path, &entry_toml(&entry))
        .with_context(|| format!("--file {}", path.display()))?;
    match key {
        Some(key) => {
            println!("{key}");
            eprintln!(
                "key '{}' added to {}; it is shown only this once",
                args.name,
                path.display()
            );
        }
        None => eprintln!(
            "certificate entry '{}' added to {}",
            args.name,
            path.display()
        ),
    }
    Ok(())
}

/// Appends `text` to the file at `path`, creating it readable by its owner only.
fn append_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn list(path: &Path) -> anyhow::Result<()> {
    let (_, keys) = read(path)?;
    for key in keys.entries() {
        let scopes: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| key.scopes.contains(*s))
            .map(Scope::name)
            .collect();
        let models = key
            .models
            .as_ref()
            .map_or("every model".to_owned(), |m| m.join(","));
        let rate = key.rate.map_or("default rate".to_owned(), |r| {
            format!("{}/s, burst {}", r.per_second, r.burst)
        });
        let certificate = match &key.credential {
            Credential::Certificate { subject } => format!("\tcertificate {subject}"),
            Credential::Key { .. } => String::new(),
        };
        println!(
            "{}\t{}\t{models}\t{rate}{certificate}",
            key.name,
            scopes.join(",")
        );
    }
    Ok(())
}

fn remove(args: &RemoveArgs) -> anyhow::Result<()> {
    let path = &args.file.file;
    let (_, keys) = read(path)?;
    let kept: Vec<_> = keys
        .entries()
        .iter()
        .filter(|k| *k.name != *args.name)
        .collect();
    anyhow::ensure!(
        kept.len() < keys.entries().len(),
        "--name '{}': no key of that name in {}",
        args.name,
        path.display()
    );
    let mut text = String::from("# ferroserve API keys (SHA-256 of each key): `ferroserve keys`\n");
    for key in kept {
        text.push_str(&entry_toml(key));
    }
    // Written beside the file and renamed over it, so the server never reads half a file.
    let staging = path.with_extension("tmp");
    std::fs::remove_file(&staging).ok();
    append_private(&staging, &text).with_context(|| format!("{}", staging.display()))?;
    std::fs::rename(&staging, path).with_context(|| format!("--file {}", path.display()))?;
    eprintln!("key '{}' removed from {}", args.name, path.display());
    Ok(())
}
