"""A local OpenID Connect issuer: a real HTTP server on 127.0.0.1 standing in for Google.

Discovery document, an authorize endpoint that redirects back with a code, a token endpoint
that checks client credentials, `redirect_uri` and the PKCE `code_verifier`, a JWKS endpoint,
and RS256-signed ID tokens. Everything it receives is recorded for the tests to inspect.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    used: bool = False


@dataclass
class FakeIssuer:
    client_id: str
    client_secret: str
    subject: str = "google-sub-1"
    email: str = "ada@example.com"
    email_verified: bool = True
    name: str = "Ada Lovelace"
    picture: str = "https://lh3.example.com/ada.png"
    claims_override: dict[str, Any] = field(default_factory=dict)
    header_override: dict[str, Any] = field(default_factory=dict)
    signing: str = "rs256"  # or "none", "hs256"
    # When set, ID tokens are signed with this key, which the JWKS never publishes.
    unpublished_key: RSAKey | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_requests: int = 0
    grants: dict[str, Grant] = field(default_factory=dict)
    key: RSAKey = field(default_factory=lambda: _keys()[0])
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def rotate_key(self) -> None:
        """Sign from now on with a new key under a new kid (the old one leaves the JWKS)."""
        published = _keys()[:3]
        self.key = published[(published.index(self.key) + 1) % len(published)]

    def id_token(self, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": self.subject,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "picture": self.picture,
            "iat": now,
            "exp": now + 3600,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.claims_override)
        claims = {k: v for k, v in claims.items() if v is not None}
        if self.signing == "none":
            header = _b64(json.dumps({"alg": "none", "kid": self.key.kid}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        if self.signing == "hs256":
            secret = OctKey.import_key(self.client_secret.encode())
            return jwt.encode({"alg": "HS256", "kid": self.key.kid}, claims, secret)
        key = self.unpublished_key or self.key
        header = {"alg": "RS256", "kid": key.kid, **self.header_override}
        return jwt.encode(header, claims, key)

    def start(self) -> FakeIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._json(200, {
                        "issuer": issuer.url,
                        "authorization_endpoint": f"{issuer.url}/authorize",
                        "token_endpoint": f"{issuer.url}/token",
                        "jwks_uri": f"{issuer.url}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    })  # fmt: skip
                elif parts.path == "/jwks":
                    issuer.jwks_requests += 1
                    self._json(200, {"keys": [issuer.key.as_dict(private=False)]})
                elif parts.path == "/authorize":
                    issuer.authorize_requests.append(query)
                    code = secrets.token_urlsafe(16)
                    issuer.grants[code] = Grant(
                        client_id=query.get("client_id", ""),
                        redirect_uri=query.get("redirect_uri", ""),
                        nonce=query.get("nonce"),
                        code_challenge=query.get("code_challenge"),
                    )
                    back = urlencode({"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("location", f"{query.get('redirect_uri')}?{back}")
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                issuer.token_requests.append(
                    {**form, "authorization": self.headers.get("authorization", "")}
                )
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                error = issuer._check_token_request(form, self.headers.get("authorization", ""))
                if error:
                    self._json(400, {"error": error})
                    return
                grant = issuer.grants[form["code"]]
                grant.used = True
                self._json(200, {
                    "access_token": "ya29.access-" + secrets.token_hex(8),
                    "refresh_token": "1//refresh-" + secrets.token_hex(8),
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "scope": "openid email profile",
                    "id_token": issuer.id_token(grant.nonce),
                })  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def _check_token_request(self, form: dict[str, str], authorization: str) -> str | None:
        expected = (
            "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        )
        posted = (
            form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        if authorization != expected and not posted:
            return "invalid_client"
        grant = self.grants.get(form.get("code", ""))
        if form.get("grant_type") != "authorization_code" or grant is None or grant.used:
            return "invalid_grant"
        if form.get("redirect_uri") != grant.redirect_uri:
            return "invalid_grant"
        verifier = form.get("code_verifier", "")
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not verifier or challenge != grant.code_challenge:
            return "invalid_grant"
        return None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@functools.cache
def _keys() -> list[RSAKey]:
    """RSA keys are slow to make: a few, made once, shared by every test."""
    return [RSAKey.generate_key(2048, parameters={"kid": f"key-{i}"}) for i in range(4)]


def unpublished_key() -> RSAKey:
    """A key no issuer fixture ever publishes in its JWKS."""
    return _keys()[3]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
