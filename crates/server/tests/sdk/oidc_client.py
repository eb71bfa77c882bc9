"""A real OpenID Connect client (authlib) against Tessera: builds the authorization URL
with PKCE, and after the browser part (done by the Rust test), exchanges the code,
validates the ID token against the JWKS, refreshes, reads userinfo, and makes the
RP-initiated logout URL from the discovery document (authlib has no helper for it).

    oidc_client.py start ISSUER CLIENT_ID REDIRECT_URI            -> JSON {url, state, verifier, nonce}
    oidc_client.py finish ISSUER CLIENT_ID REDIRECT_URI CALLBACK STATE VERIFIER NONCE -> OK, then the logout URL
"""

import json
import os
import sys

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # the test server speaks plain HTTP on loopback

from urllib.parse import urlencode

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken


def fail(why):
    print(f"FAIL {why}")
    sys.exit(1)


mode, issuer, client_id, redirect_uri = sys.argv[1:5]
meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
if meta["issuer"] != issuer:
    fail(f"issuer {meta['issuer']!r}")

if mode == "start":
    session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope="openid email", code_challenge_method="S256")
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    print(json.dumps({"url": url, "state": state, "verifier": verifier, "nonce": nonce}))
    sys.exit(0)

callback, state, verifier, nonce = sys.argv[5:9]
session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope="openid email", state=state, code_challenge_method="S256")
token = session.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)

keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
claims = JsonWebToken(meta["id_token_signing_alg_values_supported"]).decode(
    token["id_token"],
    keys,
    claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}, "nonce": {"essential": True, "value": nonce}},
)
# The test server runs on a fake clock; validate expiry against its time.
claims.validate(now=int(os.environ.get("SERVER_NOW", "0")) or None)
if "pwd" not in claims["amr"]:
    fail(f"amr {claims['amr']!r}")

# A replayed code must be refused.
replay = requests.post(meta["token_endpoint"], data={"grant_type": "authorization_code", "code": callback.split("code=")[1].split("&")[0],
                                                     "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier}, timeout=10)
if replay.status_code != 400 or replay.json().get("error") != "invalid_grant":
    fail(f"replayed code answered {replay.status_code} {replay.text}")

refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
if not refreshed.get("access_token"):
    fail("no access token on refresh")

info = session.get(meta["userinfo_endpoint"]).json()
if info.get("sub") != claims["sub"] or info.get("email") != "ann@example.com":
    fail(f"userinfo {info!r}")
print("OK")
# Sign out at the provider, identified by the ID token, and come back to the app.
print(meta["end_session_endpoint"] + "?" + urlencode(
    {"id_token_hint": token["id_token"], "post_logout_redirect_uri": redirect_uri, "state": "bye"}))
