//! The delaying proxy: TCP on 127.0.0.1 with a fixed latency each way.

use super::*;

// ---- the delaying proxy ------------------------------------------------------------------

/// A TCP proxy on 127.0.0.1 to `target` that delivers every byte `latency` after it
/// arrived, in each direction. Bytes are queued with their arrival time and released at
/// arrival + latency, so throughput is not limited by the delay (a connection's bytes keep
/// flowing while earlier ones wait). Connecting itself is not delayed. The latency can be
/// changed while connections run ([`DelayProxy::set_latency`]; bytes stay in order).
/// Dropping it (or [`DelayProxy::stop`]) closes the listener and every connection through
/// it.
pub struct DelayProxy {
    addr: SocketAddr,
    latency: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl DelayProxy {
    pub async fn start(target: SocketAddr, latency: Duration) -> DelayProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let latency = Arc::new(AtomicU64::new(latency.as_nanos() as u64));
        let shared = latency.clone();
        tokio::spawn(async move {
            loop {
                let inbound = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let (token, latency) = (token.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return; // the client sees the connection closed, as for a refusal
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = futures::future::join(
                            delayed_pipe(ri, wo, latency.clone()),
                            delayed_pipe(ro, wi, latency),
                        ) => {}
                    }
                });
            }
        });
        DelayProxy {
            addr,
            latency,
            stop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency.load(Ordering::Relaxed))
    }

    /// Bytes arriving from now on are delayed by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.latency
            .store(latency.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Closes the listener and every connection through it (replication then fails to
    /// reconnect until a new proxy is started).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One direction: a reader that timestamps chunks into a queue as fast as they come, and a
/// writer that releases each at its time. End of stream is passed on (as a shutdown of the
/// write side) after the bytes before it.
async fn delayed_pipe<R, W>(mut from: R, mut to: W, latency: Arc<AtomicU64>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let delay = Duration::from_nanos(latency.load(Ordering::Relaxed));
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    futures::future::join(read, write).await;
}
