//! What the guest's resource handles stand for on the host: an open private
//! key, a running digest, a running cipher. They are apart from the
//! interfaces that hand them out because the generated bindings name them,
//! and the interfaces name the bindings.

use std::sync::Arc;

use as2_connector::compress::Deflater;
use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::crypto::{Aead, Cipher, CryptoProvider, DigestAlgorithm, Hasher};

use crate::hostkey::HostKey;

/// An open key handle held for the guest: the key stays here.
pub struct KeyHandle(pub(super) Arc<HostKey>);

/// A running digest held for the guest. Once it is fed large pieces it
/// runs on a thread of its own, so that a message's digest is taken while
/// the guest encrypts the same bytes: signing and encrypting a large
/// document then costs about the cipher alone, not the cipher plus the digest.
pub struct HasherState {
    algorithm: DigestAlgorithm,
    run: HasherRun,
}

enum HasherRun {
    Here(Box<dyn Hasher + Send>),
    Behind {
        pieces: std::sync::mpsc::SyncSender<Vec<u8>>,
        digest: std::thread::JoinHandle<Vec<u8>>,
    },
    Finished,
}

/// Pieces at least this large move a digest to its own thread.
const BACKGROUND_DIGEST_PIECE: usize = 64 * 1024;

impl HasherState {
    pub(super) fn new(algorithm: DigestAlgorithm) -> Self {
        HasherState {
            algorithm,
            run: HasherRun::Here(RustCryptoProvider.hasher(algorithm)),
        }
    }

    pub(super) fn update(&mut self, data: Vec<u8>) -> wasmtime::Result<()> {
        if data.len() >= BACKGROUND_DIGEST_PIECE
            && let HasherRun::Here(_) = self.run
            && let HasherRun::Here(mut hasher) =
                std::mem::replace(&mut self.run, HasherRun::Finished)
        {
            // A few pieces in flight: enough to overlap, bounded in memory.
            let (pieces, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let digest = std::thread::Builder::new()
                .name("digest".into())
                .spawn(move || {
                    for piece in received {
                        hasher.update(&piece);
                    }
                    hasher.finish()
                })?;
            self.run = HasherRun::Behind { pieces, digest };
        }
        match &mut self.run {
            HasherRun::Here(hasher) => hasher.update(&data),
            HasherRun::Behind { pieces, .. } => pieces
                .send(data)
                .map_err(|_| wasmtime::Error::msg("the digest thread stopped"))?,
            HasherRun::Finished => {}
        }
        Ok(())
    }

    /// The digest of everything fed; the hasher starts afresh.
    pub(super) fn finish(&mut self) -> wasmtime::Result<Vec<u8>> {
        let fresh = HasherRun::Here(RustCryptoProvider.hasher(self.algorithm));
        match std::mem::replace(&mut self.run, fresh) {
            HasherRun::Here(hasher) => Ok(hasher.finish()),
            HasherRun::Behind { pieces, digest } => {
                drop(pieces);
                digest
                    .join()
                    .map_err(|_| wasmtime::Error::msg("the digest thread panicked"))
            }
            HasherRun::Finished => Err(wasmtime::Error::msg("a digest was lost")),
        }
    }
}

/// A running cipher held for the guest; `None` once finished.
pub struct CipherState(pub(super) Option<Box<dyn Cipher + Send>>);

/// A running AES-GCM sealing or opening held for the guest; `None` once
/// its tag was made or checked.
pub struct AeadState(pub(super) Option<Box<dyn Aead + Send>>);

/// A running zlib compression held for the guest; `None` once finished.
pub struct DeflaterState(pub(super) Option<Box<dyn Deflater + Send>>);
