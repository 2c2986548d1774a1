"""Pub/Sub bridge credentials: the RS256 JWT that brokerd self-signs for a service-account key is checked here by
independent code, google-auth's own verifier and `cryptography`, as Google would check it (signature, kid, iss/sub,
aud, lifetime, expiry). brokerd prints the token with its hidden `bridge-token` subcommand; a throwaway RSA key is
made per test run.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth import jwt as google_jwt

from harness import resolve_target

AUDIENCE = "https://pubsub.googleapis.com/"
EMAIL = "bridge@test-project.iam.gserviceaccount.com"
KID = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def brokerd() -> str:
    t = resolve_target("brokerd")
    if t.skip_reason:
        pytest.skip(f"target brokerd: {t.skip_reason}")
    return t.binary


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def key_file(tmp_path, private_key):
    """A service-account JSON key shaped like the ones the Cloud console downloads (PKCS#8 PEM)."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "key.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": KID, "private_key": pem,
        "client_email": EMAIL, "client_id": "100000000000000000000",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return path


def bridge_token(brokerd: str, key_path, now: int | None = None) -> str:
    args = [brokerd, "bridge-token", "--credentials", str(key_path)]
    if now is not None:
        args += ["--now", str(now)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def b64url_decode(segment: str) -> bytes:
    assert "=" not in segment and "+" not in segment and "/" not in segment, "base64url without padding"
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_jwt_is_accepted_by_google_auth(brokerd, key_file, private_key):
    before = int(time.time())
    token = bridge_token(brokerd, key_file)
    header_b64, claims_b64, signature_b64 = token.split(".")

    assert json.loads(b64url_decode(header_b64)) == {"alg": "RS256", "typ": "JWT", "kid": KID}
    # google-auth picks the certificate by the header's kid, checks the RS256 signature, iat/exp and aud.
    claims = google_jwt.decode(token, certs={KID: public_pem(private_key)}, audience=AUDIENCE)
    assert claims["iss"] == claims["sub"] == EMAIL
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 3600
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp"}

    # The same check with `cryptography` alone: RS256 is RSASSA-PKCS1-v1_5 with SHA-256.
    private_key.public_key().verify(
        b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_now_sets_iat_and_exp(brokerd, key_file, private_key):
    now = int(time.time()) - 60
    token = bridge_token(brokerd, key_file, now=now)
    claims = google_jwt.decode(token, certs={KID: public_pem(private_key)}, audience=AUDIENCE)
    assert (claims["iat"], claims["exp"]) == (now, now + 3600)


def test_expired_token_is_rejected(brokerd, key_file, private_key):
    token = bridge_token(brokerd, key_file, now=1_000_000_000)  # 2001
    with pytest.raises(ValueError, match="(?i)expired"):
        google_jwt.decode(token, certs={KID: public_pem(private_key)}, audience=AUDIENCE)


def test_signature_does_not_verify_with_another_key(brokerd, key_file):
    token = bridge_token(brokerd, key_file)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError, match="(?i)signature"):
        google_jwt.decode(token, certs={KID: public_pem(other)}, audience=AUDIENCE)
    header_b64, claims_b64, signature_b64 = token.split(".")
    with pytest.raises(InvalidSignature):
        other.public_key().verify(
            b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not a JSON object"),
        (json.dumps({"type": "service_account", "private_key_id": KID, "private_key": "x"}), '"client_email"'),
        (json.dumps({"type": "service_account", "private_key_id": KID, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                     "-----END PRIVATE KEY-----\n", "client_email": EMAIL}), "PEM"),
        (json.dumps({"type": "authorized_user"}), "service_account"),
    ],
)
def test_bad_key_file_fails_with_a_clear_message(brokerd, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = subprocess.run([brokerd, "bridge-token", "--credentials", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stdout == ""
    assert str(path) in out.stderr and message in out.stderr, out.stderr


def test_missing_key_file_fails_with_a_clear_message(brokerd, tmp_path):
    path = tmp_path / "missing.json"
    out = subprocess.run([brokerd, "bridge-token", "--credentials", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot read" in out.stderr and str(path) in out.stderr, out.stderr
