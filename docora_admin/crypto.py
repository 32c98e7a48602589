"""AES-256-GCM in Docora's stored format: "iv:tag:data", each part hex (12-byte iv, 16-byte tag)."""
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DecryptionError(Exception):
    """A stored secret is malformed or was encrypted with another ENCRYPTION_KEY."""


def encrypt(key, plaintext):
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext.encode(), None)
    data, tag = sealed[:-16], sealed[-16:]
    return f"{iv.hex()}:{tag.hex()}:{data.hex()}"


def decrypt(key, stored):
    try:
        iv_hex, tag_hex, data_hex = stored.split(":")
        iv, tag, data = bytes.fromhex(iv_hex), bytes.fromhex(tag_hex), bytes.fromhex(data_hex)
        return AESGCM(key).decrypt(iv, data + tag, None).decode()
    except Exception as exc:  # any malformed part or a wrong key ends the same way
        raise DecryptionError("stored secret cannot be decrypted with ENCRYPTION_KEY") from exc
