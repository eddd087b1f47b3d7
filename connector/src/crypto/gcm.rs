//! AES-GCM a piece at a time (NIST SP 800-38D §7), built from RustCrypto's
//! AES, CTR mode and GHASH, because `aes-gcm` seals and opens only whole
//! buffers and a message of a gigabyte must not be held whole.

use aes::{Aes128, Aes192, Aes256};
use ctr::cipher::consts::U16;
use ctr::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use super::{Aead, AeadCipher, CryptoError, Direction, Gcm};

/// GCM's block, and the most a tag may be.
const BLOCK: usize = 16;

/// CTR mode over one of the three AES key sizes.
enum Keystream {
    Aes128(ctr::Ctr32BE<Aes128>),
    Aes192(ctr::Ctr32BE<Aes192>),
    Aes256(ctr::Ctr32BE<Aes256>),
}

impl Keystream {
    fn apply(&mut self, data: &mut [u8]) {
        match self {
            Keystream::Aes128(ctr) => ctr.apply_keystream(data),
            Keystream::Aes192(ctr) => ctr.apply_keystream(data),
            Keystream::Aes256(ctr) => ctr.apply_keystream(data),
        }
    }
}

/// One sealing or opening in progress.
pub struct GcmStream {
    direction: Direction,
    keystream: Keystream,
    ghash: GHash,
    /// Ciphertext short of a whole GHASH block.
    pending: Vec<u8>,
    /// E(K, J0), which masks the GHASH into the tag (§7.1 step 6).
    tag_mask: [u8; BLOCK],
    aad_len: u64,
    text_len: u64,
    tag_len: usize,
}

/// `block` encrypted under `key` with the AES of `cipher`.
fn encrypt_block(
    cipher: AeadCipher,
    key: &[u8],
    block: &mut [u8; BLOCK],
) -> Result<(), CryptoError> {
    fn with<C: BlockCipherEncrypt<BlockSize = U16> + KeyInit>(
        key: &[u8],
        block: &mut [u8; BLOCK],
    ) -> Result<(), CryptoError> {
        let aes = C::new_from_slice(key)
            .map_err(|_| CryptoError::InvalidKey("AES-GCM key length".into()))?;
        aes.encrypt_block(block.into());
        Ok(())
    }
    match cipher {
        AeadCipher::Aes128Gcm => with::<Aes128>(key, block),
        AeadCipher::Aes192Gcm => with::<Aes192>(key, block),
        AeadCipher::Aes256Gcm => with::<Aes256>(key, block),
    }
}

/// Feeds `data` to GHASH as if padded to a whole block (§6.4).
fn absorb_padded(ghash: &mut GHash, data: &[u8]) {
    ghash.update_padded(data);
}

impl GcmStream {
    /// Starts sealing or opening with `gcm`'s key, nonce and additional data.
    pub fn new(gcm: Gcm<'_>, direction: Direction) -> Result<GcmStream, CryptoError> {
        if !(12..=BLOCK).contains(&gcm.tag_len) {
            return Err(CryptoError::UnsupportedAlgorithm(format!(
                "AES-GCM with a {}-byte tag",
                gcm.tag_len
            )));
        }
        if gcm.nonce.is_empty() {
            return Err(CryptoError::InvalidKey("an empty AES-GCM nonce".into()));
        }
        // H = E(K, 0^128), the hash subkey (§7.1 step 1).
        let mut hash_key = [0u8; BLOCK];
        encrypt_block(gcm.cipher, gcm.key, &mut hash_key)?;
        let ghash = GHash::new(&hash_key.into());
        // J0 (§7.1 step 2): the nonce and a counter of 1 for 96 bits,
        // otherwise the GHASH of the nonce and its length.
        let j0: [u8; BLOCK] = if gcm.nonce.len() == 12 {
            let mut j0 = [0u8; BLOCK];
            j0[..12].copy_from_slice(gcm.nonce);
            j0[15] = 1;
            j0
        } else {
            let mut nonce_hash = ghash.clone();
            absorb_padded(&mut nonce_hash, gcm.nonce);
            let mut lengths = [0u8; BLOCK];
            lengths[8..].copy_from_slice(&(gcm.nonce.len() as u64 * 8).to_be_bytes());
            nonce_hash.update(&[lengths.into()]);
            nonce_hash.finalize().into()
        };
        let mut tag_mask = j0;
        encrypt_block(gcm.cipher, gcm.key, &mut tag_mask)?;
        // The content's counter blocks start at inc32(J0) (§7.1 step 3).
        let mut first = j0;
        let counter = u32::from_be_bytes([first[12], first[13], first[14], first[15]]);
        first[12..].copy_from_slice(&counter.wrapping_add(1).to_be_bytes());
        let invalid = |_| CryptoError::InvalidKey("AES-GCM key length".into());
        let keystream = match gcm.cipher {
            AeadCipher::Aes128Gcm => Keystream::Aes128(
                ctr::Ctr32BE::<Aes128>::new_from_slices(gcm.key, &first).map_err(invalid)?,
            ),
            AeadCipher::Aes192Gcm => Keystream::Aes192(
                ctr::Ctr32BE::<Aes192>::new_from_slices(gcm.key, &first).map_err(invalid)?,
            ),
            AeadCipher::Aes256Gcm => Keystream::Aes256(
                ctr::Ctr32BE::<Aes256>::new_from_slices(gcm.key, &first).map_err(invalid)?,
            ),
        };
        let mut ghash = ghash;
        absorb_padded(&mut ghash, gcm.aad);
        Ok(GcmStream {
            direction,
            keystream,
            ghash,
            pending: Vec::with_capacity(BLOCK),
            tag_mask,
            aad_len: gcm.aad.len() as u64,
            text_len: 0,
            tag_len: gcm.tag_len,
        })
    }

    /// GHASH over ciphertext, whole blocks now, the rest kept for later.
    fn absorb(&mut self, mut ciphertext: &[u8]) {
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(ciphertext.len());
            self.pending.extend_from_slice(&ciphertext[..take]);
            ciphertext = &ciphertext[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            absorb_padded(&mut self.ghash, &self.pending);
            self.pending.clear();
        }
        let whole = ciphertext.len() / BLOCK * BLOCK;
        absorb_padded(&mut self.ghash, &ciphertext[..whole]);
        self.pending.extend_from_slice(&ciphertext[whole..]);
    }

    /// The full tag of everything processed (§7.1 steps 5 and 6).
    fn tag(mut self) -> [u8; BLOCK] {
        absorb_padded(&mut self.ghash, &self.pending);
        let mut lengths = [0u8; BLOCK];
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.text_len * 8).to_be_bytes());
        self.ghash.update(&[lengths.into()]);
        let mut tag: [u8; BLOCK] = self.ghash.finalize().into();
        for (byte, mask) in tag.iter_mut().zip(self.tag_mask) {
            *byte ^= mask;
        }
        tag
    }
}

impl Aead for GcmStream {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        if self.direction == Direction::Decrypt {
            self.absorb(data);
        }
        self.keystream.apply(&mut out);
        if self.direction == Direction::Encrypt {
            self.absorb(&out);
        }
        self.text_len += data.len() as u64;
        out
    }

    fn seal_finish(self: Box<Self>) -> Result<Vec<u8>, CryptoError> {
        let tag_len = self.tag_len;
        Ok(self.tag()[..tag_len].to_vec())
    }

    fn open_finish(self: Box<Self>, tag: &[u8]) -> Result<(), CryptoError> {
        let tag_len = self.tag_len;
        let expected = self.tag();
        // Compared in constant time: every byte is looked at.
        let differs = tag.len() != tag_len
            || expected[..tag_len]
                .iter()
                .zip(tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0;
        if differs {
            Err(CryptoError::Decryption)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::CryptoProvider;
    use crate::crypto::rustcrypto::RustCryptoProvider;

    fn gcm<'a>(cipher: AeadCipher, key: &'a [u8], nonce: &'a [u8], tag_len: usize) -> Gcm<'a> {
        Gcm {
            cipher,
            key,
            nonce,
            aad: &[],
            tag_len,
        }
    }

    /// The whole-buffer AES-GCM of `aes-gcm` is the reference: sealing in
    /// any pieces gives its bytes, and opening them in any pieces gives the
    /// plaintext back and accepts its tag.
    #[test]
    fn pieces_seal_and_open_as_the_whole_buffer_cipher_does() {
        let plain: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let nonce = [7u8; 12];
        for (cipher, key_len) in [
            (AeadCipher::Aes128Gcm, 16),
            (AeadCipher::Aes192Gcm, 24),
            (AeadCipher::Aes256Gcm, 32),
        ] {
            let key: Vec<u8> = (0..key_len as u8).collect();
            for tag_len in [12, 16] {
                for len in [0, 1, 15, 16, 17, 4999, 5000] {
                    let setup = gcm(cipher, &key, &nonce, tag_len);
                    let reference = RustCryptoProvider.aead_seal(setup, &plain[..len]).unwrap();
                    for piece in [1, 7, 16, 33, 4096] {
                        let mut seal = Box::new(GcmStream::new(setup, Direction::Encrypt).unwrap());
                        let mut sealed = Vec::new();
                        for chunk in plain[..len].chunks(piece) {
                            sealed.extend(seal.update(chunk));
                        }
                        sealed.extend(seal.seal_finish().unwrap());
                        assert_eq!(
                            sealed, reference,
                            "{cipher:?} tag {tag_len} len {len} piece {piece}"
                        );

                        let (ciphertext, tag) = reference.split_at(len);
                        let mut open = Box::new(GcmStream::new(setup, Direction::Decrypt).unwrap());
                        let mut opened = Vec::new();
                        for chunk in ciphertext.chunks(piece) {
                            opened.extend(open.update(chunk));
                        }
                        open.open_finish(tag).unwrap();
                        assert_eq!(opened, &plain[..len]);
                    }
                }
            }
        }
    }

    #[test]
    fn an_altered_byte_or_tag_does_not_open() {
        let key = [1u8; 16];
        let nonce = [2u8; 12];
        let setup = gcm(AeadCipher::Aes128Gcm, &key, &nonce, 16);
        let sealed = RustCryptoProvider.aead_seal(setup, b"ISA*00*~").unwrap();
        for flip in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[flip] ^= 1;
            let (ciphertext, tag) = altered.split_at(8);
            let mut open = Box::new(GcmStream::new(setup, Direction::Decrypt).unwrap());
            open.update(ciphertext);
            assert!(
                matches!(open.open_finish(tag), Err(CryptoError::Decryption)),
                "byte {flip}"
            );
        }
    }

    /// NIST's GCM test case 6 (AES-128, a 60-byte nonce), from the GCM
    /// specification's appendix B: the one path `aes-gcm` here does not take.
    #[test]
    fn a_nonce_other_than_96_bits_follows_the_specification() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key = hex("feffe9928665731c6d6a8f9467308308");
        let nonce = hex(concat!(
            "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728",
            "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b"
        ));
        let plain = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let expected = hex(concat!(
            "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7",
            "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
            "619cc5aefffe0bfa462af43c1699d050"
        ));
        let setup = Gcm {
            cipher: AeadCipher::Aes128Gcm,
            key: &key,
            nonce: &nonce,
            aad: &aad,
            tag_len: 16,
        };
        let mut seal = Box::new(GcmStream::new(setup, Direction::Encrypt).unwrap());
        let mut sealed = seal.update(&plain);
        sealed.extend(seal.seal_finish().unwrap());
        assert_eq!(sealed, expected);
    }
}
