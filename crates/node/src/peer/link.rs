//! Link establishment shared by both ends: TCP + TLS handshake + hello exchange, producing an
//! [`AuthenticatedLink`], plus the frame writer loop used by both the server and the client.
//!
//! Hello order: the server writes its hello first; the client reads it, writes its own, then
//! validates. The client therefore never sends application data to a server that has not
//! accepted its certificate, and both ends see (and log) a hello mismatch.

use consort_crypto::{MemberId, PublicKey};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsStream;

use super::frame::{read_frame, write_frame, write_frame_parts, Hello, OutFrame};
use super::tls::{classify_handshake_error, ed25519_key_from_cert, server_name};
use super::{PeerContext, PeerError, PROTOCOL_VERSION};

/// A TLS link whose peer passed the pinned-key check and the hello exchange.
pub struct AuthenticatedLink {
    /// The TLS stream, positioned right after the hellos.
    pub stream: TlsStream<TcpStream>,
    /// The peer's member id (derived from its certificate key).
    pub member: MemberId,
    /// The peer's certificate key.
    pub key: PublicKey,
    /// How to name the peer in logs and errors (member id and address).
    pub label: String,
}

impl std::fmt::Debug for AuthenticatedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedLink")
            .field("member", &self.member)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Connects to `addr`, runs the TLS handshake and the hello exchange, all within the
/// context's handshake timeout. If `expected` is set, the peer must be that member.
pub async fn connect_authenticated(
    ctx: &PeerContext,
    addr: &str,
    expected: Option<MemberId>,
) -> Result<AuthenticatedLink, PeerError> {
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| PeerError::Unreachable {
                peer: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(ctx.client_config());
        let mut stream = connector
            .connect(server_name()?, tcp)
            .await
            .map_err(|e| classify_handshake_error(e, addr))?;
        let (key, member) = peer_identity(ctx, stream.get_ref().1.peer_certificates())?;
        if let Some(expected) = expected {
            if expected != member {
                return Err(PeerError::WrongMember {
                    expected,
                    actual: member,
                });
            }
        }
        let label = format!("{member}@{addr}");
        let theirs = read_hello(&mut stream, ctx, &label).await?;
        send_hello(&mut stream, ctx, &label).await?;
        check_hello(ctx, &theirs, member, &label)?;
        Ok(AuthenticatedLink {
            stream: TlsStream::Client(stream),
            member,
            key,
            label,
        })
    };
    match tokio::time::timeout(ctx.handshake_timeout(), attempt).await {
        Ok(res) => res,
        Err(_) => Err(PeerError::Timeout {
            peer: addr.to_string(),
        }),
    }
}

/// Server side of [`connect_authenticated`] for an accepted TCP stream (no timeout here; the
/// caller bounds it). `label` starts as the remote address and becomes `member@address` once
/// the certificate identified the peer, so the caller can name the peer when logging a failure.
pub(crate) async fn accept_authenticated(
    ctx: &PeerContext,
    tcp: TcpStream,
    label: &mut String,
) -> Result<AuthenticatedLink, PeerError> {
    let addr = label.clone();
    let _ = tcp.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(ctx.server_config());
    let mut stream = acceptor
        .accept(tcp)
        .await
        .map_err(|e| classify_handshake_error(e, &addr))?;
    let (key, member) = peer_identity(ctx, stream.get_ref().1.peer_certificates())?;
    *label = format!("{member}@{addr}");
    send_hello(&mut stream, ctx, label).await?;
    let theirs = read_hello(&mut stream, ctx, label).await?;
    check_hello(ctx, &theirs, member, label)?;
    Ok(AuthenticatedLink {
        stream: TlsStream::Server(stream),
        member,
        key,
        label: label.clone(),
    })
}

/// The peer's key and member id from its (already verified) certificate, re-checked against
/// the trust set in case membership changed during the handshake.
fn peer_identity(
    ctx: &PeerContext,
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<(PublicKey, MemberId), PeerError> {
    let cert = certs
        .and_then(|c| c.first())
        .ok_or_else(|| PeerError::Tls("peer presented no certificate".into()))?;
    let key = ed25519_key_from_cert(cert).map_err(|e| PeerError::Tls(e.to_string()))?;
    let member = ctx
        .trust()
        .member_for(&key)
        .ok_or(PeerError::UnknownPeerKey { key })?;
    Ok((key, member))
}

async fn send_hello<S: AsyncWrite + Unpin>(
    stream: &mut S,
    ctx: &PeerContext,
    label: &str,
) -> Result<(), PeerError> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        chain_id: ctx.chain_id(),
        member_id: ctx.member_id(),
    };
    let io = async {
        write_frame(stream, &hello.encode(), Hello::LEN).await?;
        stream.flush().await?;
        Ok(())
    };
    io.await.map_err(|e| tls_io_error(e, label))
}

async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
    ctx: &PeerContext,
    label: &str,
) -> Result<Hello, PeerError> {
    let frame = read_frame(stream, Hello::LEN, ctx.handshake_timeout())
        .await
        .map_err(|e| tls_io_error(e, label))?
        .ok_or_else(|| PeerError::Disconnected {
            peer: label.to_string(),
        })?;
    Hello::decode(&frame).map_err(|e| PeerError::BadHello {
        peer: label.to_string(),
        reason: e.to_string(),
    })
}

fn check_hello(
    ctx: &PeerContext,
    hello: &Hello,
    cert_member: MemberId,
    label: &str,
) -> Result<(), PeerError> {
    if hello.version != PROTOCOL_VERSION {
        return Err(PeerError::BadHello {
            peer: label.to_string(),
            reason: format!(
                "protocol version {} (we speak {PROTOCOL_VERSION})",
                hello.version
            ),
        });
    }
    if hello.chain_id != ctx.chain_id() {
        return Err(PeerError::WrongGenesis {
            ours: ctx.chain_id(),
            theirs: hello.chain_id,
        });
    }
    if hello.member_id != cert_member {
        return Err(PeerError::BadHello {
            peer: label.to_string(),
            reason: format!(
                "hello claims member {} but the certificate belongs to {cert_member}",
                hello.member_id
            ),
        });
    }
    Ok(())
}

/// TLS alerts surface as I/O errors on the first read/write after the handshake (TLS 1.3
/// clients finish before the server has checked their certificate); classify them.
fn tls_io_error(e: PeerError, label: &str) -> PeerError {
    match e {
        PeerError::Io(io) => classify_handshake_error(io, label),
        other => other,
    }
}

/// Writes queued frame payloads to `w`, batching whatever is already queued before flushing.
/// Returns `Ok` when every sender is gone (after sending TLS close_notify).
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::Receiver<OutFrame>,
    max: usize,
) -> Result<(), PeerError> {
    let mut w = BufWriter::new(w);
    while let Some(frame) = rx.recv().await {
        write_frame_parts(&mut w, &frame, max).await?;
        while let Ok(frame) = rx.try_recv() {
            write_frame_parts(&mut w, &frame, max).await?;
        }
        w.flush().await?;
    }
    let _ = w.shutdown().await;
    Ok(())
}
