//! The secure stack's certificates and credentials, made once per stack
//! with the `openssl` command under `<data_dir>/tls/`:
//!
//! ```text
//! ca.pem, ca.key            a CA of the stack's own (the trust anchor clients are given)
//! server.pem, server.key    the services' certificate: subjectAltName DNS:localhost only,
//!                           so a client that verifies the host must name `localhost`
//!                           (and one that dials 127.0.0.1 sees a hostname mismatch)
//! server-keystore.pem       key and chain in one file, Kafka's PEM keystore
//! client.pem, client.key    a client certificate (CN=contrail) for mutual TLS
//! kafka.password            the SCRAM and PLAIN password of Kafka user `contrail`
//! ```
//!
//! Keys are EC P-256 in unencrypted PKCS#8, readable by the user only. The
//! set is made in `tls.partial/` and renamed into place, so a failed run
//! never leaves half of it for the next one to trust.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{io_err, process, StackError};

/// The issuer, audience and key id the broker expects of OAUTHBEARER
/// tokens signed with [`TlsMaterial::oauth_key`].
pub const OAUTH_ISSUER: &str = "contrail-stack";
pub const OAUTH_AUDIENCE: &str = "contrail-kafka";
pub const OAUTH_KEY_ID: &str = "contrail-stack-1";

/// Base64url without padding (RFC 4648 §5): Kafka's cluster ids, and
/// the JWKs and JWTs of the stack's OAuth stand-in.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The bytes of a hex string (a UUID without dashes, an RSA modulus),
/// `None` unless every pair is hex.
pub(crate) fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// The `openssl` command, which makes every key and certificate here.
fn openssl() -> Result<PathBuf, StackError> {
    crate::kafka::which("openssl").ok_or_else(|| StackError::Missing {
        what: "openssl, which makes the secure stack's keys and certificates".into(),
        hint: "install Debian's openssl package, or run ./scripts/env.sh".into(),
    })
}

/// A new 2048-bit RSA key in PKCS#8 PEM at `out`, readable by the user
/// only; `encrypt` names a passphrase file to encrypt it with (AES-256,
/// PBES2, as Snowflake's guide makes keys). Tests make keys with it too.
pub fn make_rsa_key(out: &Path, encrypt: Option<&Path>) -> Result<(), StackError> {
    let mut cmd = Command::new(openssl()?);
    cmd.args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    if let Some(pass) = encrypt {
        cmd.arg("-aes-256-cbc")
            .arg("-pass")
            .arg(format!("file:{}", pass.display()));
    }
    cmd.arg("-out").arg(out);
    process::run("openssl (an RSA key)", &mut cmd)?;
    restrict(out)
}

/// The secure stack's registry users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryUser {
    /// Registers, deletes, sets levels and modes.
    Writer,
    /// Reads only.
    Reader,
}

impl RegistryUser {
    pub fn name(self) -> &'static str {
        match self {
            RegistryUser::Writer => "writer",
            RegistryUser::Reader => "reader",
        }
    }

    fn role(self) -> &'static str {
        match self {
            RegistryUser::Writer => "write",
            RegistryUser::Reader => "read",
        }
    }
}

/// The Kafka user the secure stack creates.
pub const KAFKA_USER: &str = "contrail";
const DAYS: &str = "825";

/// Paths of the material in one stack's `tls/` directory.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub dir: PathBuf,
}

impl TlsMaterial {
    pub fn new(data_dir: &Path) -> TlsMaterial {
        TlsMaterial {
            dir: data_dir.join("tls"),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn server_keystore(&self) -> PathBuf {
        self.dir.join("server-keystore.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// The registry's users file (`name: password, role` lines).
    pub fn registry_users(&self) -> PathBuf {
        self.dir.join("registry.users")
    }

    /// `user:password` of one of the registry's users, for a client's
    /// `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE`.
    pub fn registry_user_info(&self, user: RegistryUser) -> PathBuf {
        self.dir.join(format!("registry-{}.userinfo", user.name()))
    }

    /// The registry's users, made once: a writer and a reader, each with a
    /// random password. (Stacks made secure before the registry was have
    /// certificates but no users yet.)
    pub fn ensure_registry_users(&self) -> Result<(), StackError> {
        if self.registry_users().is_file() {
            return Ok(());
        }
        let mut users = String::from("# The secure stack's registry users: name: password, role\n");
        for user in [RegistryUser::Writer, RegistryUser::Reader] {
            let password = crate::kafka::random_id()?;
            users.push_str(&format!("{}: {password}, {}\n", user.name(), user.role()));
            write_private(&self.registry_user_info(user), &format!("{}:{password}\n", user.name()))?;
        }
        write_private(&self.registry_users(), &users)
    }

    /// An encrypted PKCS#8 RSA key for Snowflake key-pair login, and the
    /// file holding its passphrase.
    pub fn snowflake_key(&self) -> PathBuf {
        self.dir.join("snowflake-key.p8")
    }
    pub fn snowflake_passphrase_file(&self) -> PathBuf {
        self.dir.join("snowflake-key.passphrase")
    }

    /// Makes the Snowflake key once (`openssl genpkey`, AES-256 PBES2, as
    /// Snowflake's documentation makes one).
    pub fn ensure_snowflake_key(&self) -> Result<(), StackError> {
        if self.snowflake_key().is_file() {
            return Ok(());
        }
        let passphrase = crate::kafka::random_id()?;
        write_private(&self.snowflake_passphrase_file(), &format!("{passphrase}\n"))?;
        let partial = self.dir.join("snowflake-key.partial");
        make_rsa_key(&partial, Some(&self.snowflake_passphrase_file()))?;
        std::fs::rename(&partial, self.snowflake_key()).map_err(io_err(format!("moving {}", partial.display())))
    }

    /// The signing key of the stack's stand-in identity provider, whose
    /// public half Kafka trusts for OAUTHBEARER tokens (see [`OAUTH_ISSUER`]).
    pub fn oauth_key(&self) -> PathBuf {
        self.dir.join("oauth-key.pem")
    }
    /// The JWKS (RFC 7517) with that key's public half, which the broker
    /// reads as `sasl.oauthbearer.jwks.endpoint.url=file://…`.
    pub fn oauth_jwks(&self) -> PathBuf {
        self.dir.join("oauth-jwks.json")
    }

    /// Makes the OAuth signing key and its JWKS once.
    pub fn ensure_oauth(&self) -> Result<(), StackError> {
        if self.oauth_jwks().is_file() {
            return Ok(());
        }
        make_rsa_key(&self.oauth_key(), None)?;
        let mut modulus = Command::new(openssl()?);
        modulus.args(["rsa", "-noout", "-modulus", "-in"]).arg(self.oauth_key());
        let out = process::run("openssl (the OAuth key's modulus)", &mut modulus)?;
        let hex = out.trim().strip_prefix("Modulus=").unwrap_or_default();
        let bytes = hex_bytes(hex)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| StackError::Config(format!("openssl printed no modulus: {out}")))?;
        let jwks = format!(
            "{{\"keys\":[{{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"{OAUTH_KEY_ID}\",\"n\":\"{}\",\"e\":\"AQAB\"}}]}}\n",
            base64url(&bytes)
        );
        std::fs::write(self.oauth_jwks(), jwks).map_err(io_err(format!("writing {}", self.oauth_jwks().display())))
    }

    pub fn kafka_password_file(&self) -> PathBuf {
        self.dir.join("kafka.password")
    }

    /// The Kafka user's password.
    pub fn kafka_password(&self) -> Result<String, StackError> {
        let f = self.kafka_password_file();
        Ok(std::fs::read_to_string(&f)
            .map_err(io_err(format!("reading {}", f.display())))?
            .trim()
            .to_string())
    }

    /// Makes the material unless a complete set is there.
    pub fn ensure(&self) -> Result<(), StackError> {
        if self.kafka_password_file().is_file() {
            return Ok(());
        }
        let openssl = openssl()?;
        let partial = self.dir.with_file_name("tls.partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(io_err(format!("creating {}", partial.display())))?;
        tracing::info!(dir = %self.dir.display(), "making the secure stack's CA and certificates");
        make_all(&openssl, &partial)?;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::rename(&partial, &self.dir).map_err(io_err(format!("moving {}", self.dir.display())))
    }
}

fn make_all(openssl: &Path, dir: &Path) -> Result<(), StackError> {
    let ssl = |what: &str, args: &[&str]| {
        let mut cmd = Command::new(openssl);
        cmd.current_dir(dir).args(args);
        process::run(&format!("openssl ({what})"), &mut cmd).map(drop)
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ssl(
        "the stack's CA",
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", DAYS],
            &["-subj", "/CN=Contrail local stack CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    )?;
    let leaf = |name: &str, cn: &str, ext: &str| -> Result<(), StackError> {
        let ext_file = format!("{name}.ext");
        std::fs::write(dir.join(&ext_file), ext).map_err(io_err(format!("writing {ext_file}")))?;
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        ssl(
            &format!("the {name} key"),
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")],
            ]
            .concat(),
        )?;
        ssl(
            &format!("signing the {name} certificate"),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                DAYS,
                "-extfile",
                &ext_file,
            ],
        )
    };
    leaf(
        "server",
        "localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )?;
    leaf(
        "client",
        KAFKA_USER,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(io_err(format!("reading {f}")));
    let keystore = format!("{}{}{}", read("server.key")?, read("server.pem")?, read("ca.pem")?);
    write_private(&dir.join("server-keystore.pem"), &keystore)?;
    write_private(
        &dir.join("kafka.password"),
        &format!("{}\n", crate::kafka::random_id()?),
    )?;
    for f in ["ca.key", "server.key", "client.key"] {
        restrict(&dir.join(f))?;
    }
    for f in ["server.csr", "client.csr", "server.ext", "client.ext", "ca.srl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(())
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), StackError> {
    std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))?;
    restrict(path)
}

pub(crate) fn restrict(path: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("restricting {}", path.display())))
}
