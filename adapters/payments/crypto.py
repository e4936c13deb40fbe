"""SHA256withRSA (PKCS#1 v1.5) and AES-256-GCM, as the providers use them."""

from __future__ import annotations

import base64
import binascii

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15


def load_private_key(path: str) -> RSA.RsaKey:
    with open(path, "rb") as handle:
        return RSA.import_key(handle.read())


def load_public_key(path_or_pem: str) -> RSA.RsaKey:
    """A PEM public key or X.509 certificate, from a file path or the PEM text itself."""
    if "-----BEGIN" in path_or_pem:
        return RSA.import_key(path_or_pem)
    with open(path_or_pem, "rb") as handle:
        return RSA.import_key(handle.read())


def sign(key: RSA.RsaKey, message: bytes) -> str:
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(message))).decode()


def verify(key: RSA.RsaKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        pkcs1_15.new(key).verify(SHA256.new(message), signature)
        return True
    except (ValueError, TypeError, binascii.Error):
        return False


def aes_gcm_decrypt(key: bytes, nonce: str, associated_data: str, ciphertext_b64: str
                    ) -> bytes | None:
    """WeChat Pay resource decryption; None when the tag does not verify."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce.encode())
        cipher.update(associated_data.encode())
        return cipher.decrypt_and_verify(data[:-16], data[-16:])
    except (ValueError, KeyError, binascii.Error):
        return None


def aes_gcm_encrypt(key: bytes, nonce: str, associated_data: str, plain: bytes) -> str:
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce.encode())
    cipher.update(associated_data.encode())
    ciphertext, tag = cipher.encrypt_and_digest(plain)
    return base64.b64encode(ciphertext + tag).decode()
