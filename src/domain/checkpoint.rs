//! Checkpoints of a tenant's log as C2SP signed notes
//! (c2sp.org/tlog-checkpoint, c2sp.org/signed-note): what a witness or an
//! auditor keeps, and checks later proofs against.
//!
//! The note text is three lines: the origin (the tenant's log), the tree
//! size in decimal and the root hash in standard base64. It is signed with
//! Ed25519 by the active receipt key, under a key name equal to the origin,
//! so the signature line is `— ORIGIN base64(KEY_ID || SIGNATURE)` with
//! KEY_ID = SHA-256(ORIGIN || 0x0A || 0x01 || public key)[:4]. The same
//! public key, as a verifier key `ORIGIN+HEX(KEY_ID)+base64(0x01 || key)`,
//! is what Go's `sumdb/note` and other verifiers take.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{keyring::SigningKeyring, merkle::Hash};

/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// The em dash that opens a signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Most signature lines a note may carry (signed-note asks for at least 16).
const MAX_SIGNATURES: usize = 64;

/// A tree head of a tenant's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The origin of a tenant's log: `PREFIX/TENANT_ID`.
pub fn log_origin(prefix: &str, tenant_id: Uuid) -> String {
    format!("{prefix}/{tenant_id}")
}

/// An origin or key name: non-empty, no spaces, no '+' (signed-note).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(format!(
            "{name:?} is not a key name: non-empty, no spaces, no '+'"
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// The note text: origin, size and root, each line ending in a newline.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Reads a note text back; extension lines are allowed and ignored.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or("the text does not end in a newline")?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = &lines[..] else {
            return Err("a checkpoint has an origin, a size and a root hash".into());
        };
        check_name(origin).map_err(|e| format!("origin: {e}"))?;
        let canonical = size.bytes().all(|b| b.is_ascii_digit())
            && !size.is_empty()
            && (*size == "0" || !size.starts_with('0'));
        let size: u64 = canonical
            .then(|| size.parse().ok())
            .flatten()
            .ok_or("the tree size is not a decimal number")?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("the root hash is not 32 bytes of base64")?;
        if extensions.iter().any(|line| line.is_empty()) {
            return Err("an extension line is empty".into());
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// The checkpoint as a signed note, signed by the active receipt key
    /// under the origin as key name.
    pub fn sign(&self, keyring: &SigningKeyring) -> String {
        let text = self.text();
        let active = keyring
            .public_keys()
            .into_iter()
            .find(|key| key.active)
            .expect("a keyring has an active key");
        let (_, signature) = keyring.sign(text.as_bytes());
        let mut blob = note_key_id(&self.origin, &active.public_key).to_vec();
        blob.extend_from_slice(&signature);
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.origin,
            STANDARD.encode(blob)
        )
    }

    /// The checkpoint a note holds, its signatures not checked: for notes
    /// consentd signed and stored itself.
    pub fn read_unverified(note: &str) -> Result<Self, String> {
        Self::parse_text(split_note(note)?.0)
    }

    /// Opens a signed checkpoint: the checkpoint, if one of `public_keys`
    /// signed it under its origin.
    pub fn open(note: &str, public_keys: &[[u8; 32]]) -> Result<Self, String> {
        let (text, _) = split_note(note)?;
        let checkpoint = Self::parse_text(text)?;
        let verified = public_keys
            .iter()
            .any(|key| open_note(note, &checkpoint.origin, key).is_ok());
        if !verified {
            return Err(format!(
                "no signature of {} by a known key verifies",
                checkpoint.origin
            ));
        }
        Ok(checkpoint)
    }
}

/// SHA-256(name || 0x0A || 0x01 || public key)[:4]: the key id of an
/// Ed25519 key in signed notes.
pub fn note_key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let hash = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519])
        .chain_update(public_key)
        .finalize();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// The verifier key `NAME+HEX(KEY_ID)+base64(0x01 || key)`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut typed = vec![ED25519];
    typed.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(note_key_id(name, public_key)),
        STANDARD.encode(typed)
    )
}

/// Reads a verifier key: its name and Ed25519 public key.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, [u8; 32]), String> {
    let bad = || format!("{vkey:?} is not an Ed25519 verifier key NAME+HASH+KEY");
    let (name, rest) = vkey.split_once('+').ok_or_else(bad)?;
    let (hash, key) = rest.split_once('+').ok_or_else(bad)?;
    check_name(name)?;
    let typed = STANDARD.decode(key).map_err(|_| bad())?;
    let public_key: [u8; 32] = match typed.split_first() {
        Some((&ED25519, key)) => key.try_into().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if hash != hex::encode(note_key_id(name, &public_key)) {
        return Err(format!("{vkey:?}: the key hash does not match the key"));
    }
    Ok((name.to_string(), public_key))
}

/// A note's text (with its final newline) and its signature lines.
fn split_note(note: &str) -> Result<(&str, Vec<&str>), String> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err("a note holds no control characters but newlines".into());
    }
    let signatures = note.strip_suffix('\n').ok_or("a note ends in a newline")?;
    // The text ends at the last blank line.
    let at = signatures.rfind("\n\n").ok_or("a note has no signatures")?;
    let (text, lines) = (&note[..=at], &signatures[at + 2..]);
    let lines: Vec<&str> = lines.split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err("a note with too many signatures".into());
    }
    Ok((text, lines))
}

/// Opens a signed note: its text, if it carries a signature of `name` by
/// `public_key` that verifies. Signatures of other keys are ignored; one of
/// this key that does not verify rejects the note.
pub fn open_note<'a>(note: &'a str, name: &str, public_key: &[u8; 32]) -> Result<&'a str, String> {
    let (text, lines) = split_note(note)?;
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| "not an Ed25519 public key")?;
    let key_id = note_key_id(name, public_key);
    let mut verified = false;
    for line in lines {
        let (line_name, blob) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or("a signature line is not \u{2014} NAME SIGNATURE")?;
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| "a signature is not base64")?;
        let Some((id, signature)) = blob.split_at_checked(4) else {
            return Err("a signature is shorter than its key id".into());
        };
        if line_name != name || id != key_id {
            continue;
        }
        let signature = Signature::from_slice(signature).map_err(|_| "not an Ed25519 signature")?;
        key.verify_strict(text.as_bytes(), &signature)
            .map_err(|_| format!("the signature of {name} does not verify"))?;
        verified = true;
    }
    if !verified {
        return Err(format!("no signature of {name} by this key"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keyring::generate_entry;

    /// golang.org/x/mod/sumdb/note's example, as published.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n";
    const PETER_NOTE_SIGNATURE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn peter_keyring() -> SigningKeyring {
        let typed = STANDARD
            // PRIVATE+KEY+NAME+HASH+KEY; the key's base64 may hold a '+'.
            .decode(PETER_SKEY.splitn(5, '+').nth(4).unwrap())
            .unwrap();
        assert_eq!(typed[0], ED25519);
        SigningKeyring::parse(&format!("peter={}", STANDARD.encode(&typed[1..]))).unwrap()
    }

    #[test]
    fn the_published_go_note_opens_and_our_keys_and_signatures_match_it() {
        let note = format!("{PETER_TEXT}\n{PETER_NOTE_SIGNATURE}");
        let (name, public_key) = parse_verifier_key(PETER_VKEY).unwrap();
        assert_eq!(name, "PeterNeumann");
        assert_eq!(open_note(&note, &name, &public_key), Ok(PETER_TEXT));
        let keyring = peter_keyring();
        assert_eq!(keyring.public_keys()[0].public_key, public_key);
        assert_eq!(verifier_key(&name, &public_key), PETER_VKEY);
        // Ed25519 is deterministic: signing the text again gives the note.
        let (_, signature) = keyring.sign(PETER_TEXT.as_bytes());
        let mut blob = note_key_id(&name, &public_key).to_vec();
        blob.extend_from_slice(&signature);
        assert_eq!(
            format!("\u{2014} {name} {}\n", STANDARD.encode(blob)),
            PETER_NOTE_SIGNATURE
        );
        let altered = note.replace("cryptography", "cryptographY");
        assert!(open_note(&altered, &name, &public_key).is_err());
    }

    fn keyring() -> SigningKeyring {
        SigningKeyring::parse(&generate_entry("sig-1")).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: log_origin("consentd.example", Uuid::nil()),
            size: 20852163,
            root: [7; 32],
        }
    }

    #[test]
    fn a_checkpoint_is_three_lines_a_blank_line_and_one_signature_line() {
        let keyring = keyring();
        let public = keyring.public_keys()[0].public_key;
        let note = checkpoint().sign(&keyring);
        let lines: Vec<&str> = note.split('\n').collect();
        assert_eq!(
            lines[0],
            "consentd.example/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(lines[1], "20852163");
        assert_eq!(lines[2], STANDARD.encode([7; 32]));
        assert_eq!(lines[3], "");
        let blob = lines[4]
            .strip_prefix(&format!("\u{2014} {} ", lines[0]))
            .unwrap();
        let blob = STANDARD.decode(blob).unwrap();
        assert_eq!(blob.len(), 4 + 64);
        assert_eq!(blob[..4], note_key_id(lines[0], &public));
        assert_eq!(lines[5..], [""], "the note ends in a newline");
        assert_eq!(Checkpoint::open(&note, &[public]), Ok(checkpoint()));
        let vkey = verifier_key(lines[0], &public);
        assert_eq!(
            parse_verifier_key(&vkey).unwrap(),
            (lines[0].to_string(), public)
        );
    }

    #[test]
    fn a_changed_byte_anywhere_or_another_key_fails_to_open() {
        let keyring = keyring();
        let public = keyring.public_keys()[0].public_key;
        let note = checkpoint().sign(&keyring);
        for i in 0..note.len() {
            if !note.is_char_boundary(i) || !note.is_char_boundary(i + 1) {
                continue;
            }
            let mut bytes = note.clone().into_bytes();
            bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(Checkpoint::open(&tampered, &[public]).is_err(), "byte {i}");
        }
        let other = keyring_public(&self::keyring());
        assert!(Checkpoint::open(&note, &[other]).is_err());
        assert_eq!(Checkpoint::open(&note, &[other, public]), Ok(checkpoint()));
    }

    fn keyring_public(keyring: &SigningKeyring) -> [u8; 32] {
        keyring.public_keys()[0].public_key
    }

    #[test]
    fn malformed_texts_and_names_are_errors() {
        let root = STANDARD.encode([0; 32]);
        for text in [
            format!("origin\n01\n{root}\n"),
            format!("origin\n-1\n{root}\n"),
            format!("origin\n1\n{root}"),
            "origin\n1\nAAAA\n".to_string(),
            format!("origin\n1\n{root}\n\n"),
            format!("has space\n1\n{root}\n"),
            format!("a+b\n1\n{root}\n"),
            "origin\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse_text(&text).is_err(), "{text:?}");
        }
        let with_extension = format!("origin\n0\n{root}\nextension\n");
        assert_eq!(Checkpoint::parse_text(&with_extension).unwrap().size, 0);
        assert!(check_name("").is_err());
        assert!(
            parse_verifier_key(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
    }
}
