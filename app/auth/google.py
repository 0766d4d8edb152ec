"""Google sign-in as an OpenID Connect relying party: the code flow with PKCE and a nonce.

Knows HTTP and JOSE, not the database: it builds the authorization URL, exchanges the code
(Authlib's client) and verifies the ID token against the issuer's JWKS (joserfc).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.lib.errors import SignInFailed
from app.settings import Settings

# httpx, Authlib and joserfc load on the first sign-in, not with the app (they added ~0.5 s to
# every start, and most requests never sign anyone in).
if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from joserfc.jwk import KeySet

SCOPE = "openid email profile"
# Google signs ID tokens with RS256; "none" and HMAC algorithms are never accepted.
ALGORITHMS = ["RS256"]
METADATA_TTL = 3600.0
CLOCK_LEEWAY = 60
HTTP_TIMEOUT = 10.0  # seconds, for discovery and the JWKS
CONNECT_TIMEOUT = 5.0
TOKEN_TIMEOUT = 10.0  # Authlib hands this to each request; it takes seconds, not a Timeout
# Google's ID tokens may name the issuer with or without the scheme.
GOOGLE_ISSUERS = {"https://accounts.google.com", "accounts.google.com"}


@dataclass
class GoogleOIDC:
    """One per app: caches the discovery document and the JWKS between sign-ins."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    # A joserfc KeySet once fetched; typed loosely, as joserfc is imported on first use and
    # Litestar resolves the annotations of what it injects.
    _keys: Any = None
    _accepted_issuers: set[str] = field(default_factory=set)

    @classmethod
    def from_settings(cls, settings: Settings) -> GoogleOIDC | None:
        if not (settings.auth_google_id and settings.auth_google_secret):
            return None
        issuer = settings.auth_google_issuer.rstrip("/")
        return cls(
            issuer=issuer,
            client_id=settings.auth_google_id,
            client_secret=settings.auth_google_secret,
            redirect_uri=f"{settings.base_url}/api/auth/callback/google",
            _accepted_issuers=GOOGLE_ISSUERS if issuer in GOOGLE_ISSUERS else {issuer},
        )

    def _client(self) -> AsyncOAuth2Client:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=SCOPE,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=TOKEN_TIMEOUT,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(HTTP_TIMEOUT, connect=CONNECT_TIMEOUT)
            ) as http:
                response = await http.get(url)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("Configuration", f"cannot read {url}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise SignInFailed("Configuration", f"{url} did not return a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document, cached for an hour."""
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL:
            data = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(key), str):
                    raise SignInFailed("Configuration", f"discovery document lacks {key}")
            self._metadata, self._metadata_at = data, time.monotonic()
        return self._metadata

    async def authorization_url(self, state: str, code_verifier: str, nonce: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        """Trade the authorization code (with the PKCE verifier) for tokens."""
        import httpx
        from authlib.common.errors import AuthlibBaseError

        endpoint = (await self.metadata())["token_endpoint"]
        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
            raise SignInFailed(
                "Verification", f"token request failed: {type(exc).__name__}"
            ) from exc
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise SignInFailed("Verification", "the token response has no id_token")
        return dict(token)

    async def _key_set(self, refresh: bool = False) -> KeySet:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        if self._keys is None or refresh:
            jwks_uri = (await self.metadata())["jwks_uri"]
            try:
                self._keys = KeySet.import_key_set(await self._get_json(jwks_uri))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as exc:
                raise SignInFailed("Configuration", "the issuer's JWKS is unusable") from exc
        keys: KeySet = self._keys
        return keys

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature (JWKS, refetched once for an unknown `kid`), iss, aud, azp, exp, nonce."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        header = _header_of(id_token)
        if header.get("alg") not in ALGORITHMS:
            raise SignInFailed("Verification", f"ID token algorithm {header.get('alg')!r} refused")
        keys = await self._key_set()
        kid = header.get("kid")
        if kid is not None and all(key.kid != kid for key in keys):
            keys = await self._key_set(refresh=True)  # the issuer may have rotated its keys
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY,
                iss={"essential": True, "values": sorted(self._accepted_issuers)},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed("Verification", f"ID token refused: {type(exc).__name__}") from exc
        claims = token.claims
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and "azp" not in claims:
            raise SignInFailed("Verification", "ID token with several audiences lacks azp")
        if "azp" in claims and claims["azp"] != self.client_id:
            raise SignInFailed("Verification", "ID token azp is not this client")
        return claims


def _header_of(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError) as exc:
        raise SignInFailed("Verification", "malformed ID token") from exc
    if not isinstance(header, dict):
        raise SignInFailed("Verification", "malformed ID token")
    return header
