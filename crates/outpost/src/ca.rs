//! `outpost ca`: upload, list and delete the CA certificates that devices registered with
//! `--x509-ca` chain to, through the service REST API (`GET /certificates`,
//! `PUT`/`DELETE /certificates/{name}`). These calls need a policy with every right (the owner
//! policy the hub writes to `DATA_DIR/owner-connection-string`).
//!
//! Uploaded certificates are trusted at once: there is no proof-of-possession step.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use crate::manage::HubConnection;
use crate::service_client::segment;

#[derive(Args)]
pub struct CaArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Upload the CA certificate in FILE (PEM) under NAME. Devices created with `--x509-ca`
    /// then connect with certificates it signed whose subject CN is their device id.
    Upload {
        name: String,
        file: PathBuf,
        /// Replace the certificate already uploaded under NAME.
        #[arg(long)]
        replace: bool,
    },
    /// List uploaded CA certificates.
    List,
    /// Delete the CA certificate uploaded under NAME; devices chaining only to it can no longer connect.
    Delete { name: String },
}

const CERTIFICATE_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "/name"),
    ("SUBJECT", "/properties/subject"),
    ("THUMBPRINT", "/properties/thumbprint"),
    ("VERIFIED", "/properties/isVerified"),
    ("EXPIRY", "/properties/expiry"),
];

pub async fn ca(args: CaArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    match args.command {
        CaCommand::Upload {
            name,
            file,
            replace,
        } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the CA certificate {}", file.display()))?;
            let headers = if replace {
                vec![("if-match", "*".to_owned())]
            } else {
                Vec::new()
            };
            let body = json!({"properties": {"certificate": pem}});
            let path = format!("/certificates/{}", segment(&name));
            let uploaded = client
                .call(Method::PUT, &path, Some(body), &headers)
                .await?
                .success()?
                .json()?;
            args.hub.print(&uploaded, CERTIFICATE_COLUMNS);
        }
        CaCommand::List => {
            let list = client
                .call(Method::GET, "/certificates", None, &[])
                .await?
                .success()?
                .json()?;
            args.hub.print(&list["value"], CERTIFICATE_COLUMNS);
        }
        CaCommand::Delete { name } => {
            let path = format!("/certificates/{}", segment(&name));
            client
                .call(Method::DELETE, &path, None, &[("if-match", "*".to_owned())])
                .await?
                .success()?;
            println!("deleted CA certificate {name}");
        }
    }
    Ok(())
}
