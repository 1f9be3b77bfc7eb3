//! SQL Server connection options: the `mssql://` URL read and checked once (encryption,
//! certificate checks, readonly intent, named instances, the credential), and the tiberius
//! configuration of each new connection built from them.
//!
//! Must not: connect, or read a credential before a connection needs it (an access token
//! is read again for every connection, so that one refreshed outside driftwatch is used).

use std::time::Duration;

use tiberius::{AuthMethod, Config, EncryptionLevel};

/// Where the credential of a new connection comes from.
#[derive(Clone)]
pub(super) enum Credential {
    /// SQL authentication: the URL's user, the config's password.
    Password {
        user: String,
        password: String,
    },
    /// An Azure AD access token, read again for every connection.
    TokenEnv(String),
    TokenFile(std::path::PathBuf),
}

/// What the URL says, checked once when the engine is built.
#[derive(Clone)]
pub struct ConnectOptions {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) instance: Option<String>,
    pub(super) database: String,
    pub(super) encryption: EncryptionLevel,
    pub(super) trust_server_certificate: bool,
    pub(super) ca_file: Option<String>,
    pub(super) hostname_in_certificate: Option<String>,
    pub(super) readonly: bool,
    pub(super) application_name: String,
    pub(super) credential: Credential,
}

/// How a connection checks the server's certificate, from `encrypt`,
/// `trust_server_certificate` and `trust_server_certificate_ca` (the table in docs/engines/sqlserver.md, TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateCheck {
    /// Against the system's trust store, and the host name (or hostname_in_certificate).
    System,
    /// Against the CA certificate in this file, and the host name.
    Ca(String),
    /// Not checked: trust_server_certificate, or encrypt=false, where only the login is
    /// encrypted and, as with Microsoft's drivers, its certificate is not validated
    /// (a stock SQL Server encrypts the login with a self-signed certificate).
    Unchecked,
}

/// The URL parameters, for error messages.
const PARAMETERS: &str = "encrypt, trust_server_certificate, trust_server_certificate_ca, \
     hostname_in_certificate, application_intent, instance, application_name, authentication, \
     access_token_env, access_token_file";

impl ConnectOptions {
    /// Reads `mssql://user@host[:port]/database?…`; `password` is the config's.
    pub fn parse(raw: &str, password: Option<&str>) -> std::result::Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("invalid SQL Server URL: {e}"))?;
        if url.scheme() != "mssql" && url.scheme() != "sqlserver" {
            return Err(format!("expected mssql://, got {}://", url.scheme()));
        }
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| format!("invalid percent-encoding in {s:?}"));
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let database = decode(url.path().trim_start_matches('/'))?;
        if database.is_empty() {
            return Err(
                "the URL names no database (expected mssql://user@host:port/database)".into(),
            );
        }
        if url.password().is_some() {
            return Err("put the password in password_env or password_file, not in the URL".into());
        }
        let user = decode(url.username())?;
        let mut o = ConnectOptions {
            host,
            port: url.port(),
            instance: None,
            database,
            encryption: EncryptionLevel::Required,
            trust_server_certificate: false,
            ca_file: None,
            hostname_in_certificate: None,
            readonly: false,
            application_name: "driftwatch".into(),
            credential: Credential::Password {
                user: user.clone(),
                password: String::new(),
            },
        };
        let mut authentication = "sql_password".to_string();
        let (mut token_env, mut token_file) = (None, None);
        let flag = |k: &str, v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(format!("{k}={v:?}: expected true or false")),
        };
        for (k, v) in url.query_pairs() {
            let v = v.into_owned();
            match k.as_ref() {
                "encrypt" => {
                    o.encryption = match v.to_ascii_lowercase().as_str() {
                        "strict" => EncryptionLevel::Strict,
                        "true" | "yes" | "mandatory" => EncryptionLevel::Required,
                        // Only the login is encrypted (the server may still insist on more).
                        "false" | "no" | "optional" => EncryptionLevel::Off,
                        _ => return Err(format!("encrypt={v:?}: expected true, false or strict")),
                    }
                }
                "trust_server_certificate" => o.trust_server_certificate = flag(&k, &v)?,
                "trust_server_certificate_ca" => o.ca_file = Some(v),
                "hostname_in_certificate" => o.hostname_in_certificate = Some(v),
                "application_intent" => {
                    o.readonly = match v.to_ascii_lowercase().as_str() {
                        "readonly" => true,
                        "readwrite" => false,
                        _ => {
                            return Err(format!(
                                "application_intent={v:?}: expected readonly or readwrite"
                            ))
                        }
                    }
                }
                "instance" => o.instance = Some(v),
                "application_name" => o.application_name = v,
                "authentication" => authentication = v.to_ascii_lowercase(),
                "access_token_env" => token_env = Some(v),
                "access_token_file" => token_file = Some(v),
                other => {
                    return Err(format!(
                        "unknown URL parameter {other:?} (known: {PARAMETERS})"
                    ))
                }
            }
        }
        if o.trust_server_certificate && o.ca_file.is_some() {
            return Err(
                "set trust_server_certificate or trust_server_certificate_ca, not both".into(),
            );
        }
        o.credential = credential(&authentication, token_env, token_file, user, password)?;
        Ok(o)
    }

    pub(crate) fn certificate_check(&self) -> CertificateCheck {
        match (
            &self.ca_file,
            self.trust_server_certificate,
            self.encryption,
        ) {
            (Some(ca), _, _) => CertificateCheck::Ca(ca.clone()),
            (None, true, _) | (None, false, EncryptionLevel::Off) => CertificateCheck::Unchecked,
            (None, false, _) => CertificateCheck::System,
        }
    }

    /// The tiberius configuration of a new connection, its credential read now.
    pub fn tiberius_config(
        &self,
        statement_timeout: Duration,
    ) -> std::result::Result<Config, String> {
        let mut c = Config::new();
        c.host(&self.host);
        if let Some(p) = self.port {
            c.port(p);
        }
        if let Some(i) = &self.instance {
            c.instance_name(i);
        }
        c.database(&self.database);
        c.application_name(&self.application_name);
        c.encryption(self.encryption);
        match self.certificate_check() {
            CertificateCheck::System => {}
            CertificateCheck::Ca(file) => c.trust_cert_ca(file),
            CertificateCheck::Unchecked => c.trust_cert(),
        }
        if let Some(h) = &self.hostname_in_certificate {
            c.hostname_in_certificate(h);
        }
        c.readonly(self.readonly);
        // The time the server may stay silent; the whole statement is bounded separately.
        c.command_timeout(Some(statement_timeout));
        c.authentication(match &self.credential {
            Credential::Password { user, password } => AuthMethod::sql_server(user, password),
            Credential::TokenEnv(var) => AuthMethod::aad_token(
                std::env::var(var)
                    .map_err(|_| format!("access_token_env: {var} is not set"))?
                    .trim(),
            ),
            Credential::TokenFile(path) => AuthMethod::aad_token(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("access_token_file {}: {e}", path.display()))?
                    .trim(),
            ),
        });
        Ok(c)
    }
}

/// How the service logs in: SQL authentication with the config's password, or an access
/// token from exactly one place, so that which credential applies is never a guess.
fn credential(
    authentication: &str,
    token_env: Option<String>,
    token_file: Option<String>,
    user: String,
    password: Option<&str>,
) -> std::result::Result<Credential, String> {
    Ok(match (authentication, token_env, token_file) {
        ("sql_password", None, None) => {
            if user.is_empty() {
                return Err("the URL names no user (mssql://user@host/database)".into());
            }
            Credential::Password {
                user,
                password: password
                    .ok_or("SQL authentication needs password_env or password_file")?
                    .to_string(),
            }
        }
        ("access_token", Some(env), None) => Credential::TokenEnv(env),
        ("access_token", None, Some(file)) => Credential::TokenFile(file.into()),
        ("access_token", _, _) => return Err(
            "authentication=access_token needs access_token_env or access_token_file (one of them)"
                .into(),
        ),
        ("sql_password", _, _) => {
            return Err(
                "access_token_env and access_token_file need authentication=access_token".into(),
            )
        }
        (other, _, _) => {
            return Err(format!(
                "authentication={other:?}: expected sql_password or access_token"
            ))
        }
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
