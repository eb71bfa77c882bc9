"""Signs in through FusionAuth's own Python client (PyPI fusionauth-client) against
Tessera: the Login API's 404 for a wrong password, its 242 with a twoFactorId and the
methods, then the Two Factor Login API with the authenticator's code. Prints what the
client library read, as JSON, for the Rust test to check.

usage: fusionauth_login.py BASE_URL API_KEY LOGIN_ID PASSWORD TOTP_CODE
"""
import json
import sys

from fusionauth.fusionauth_client import FusionAuthClient

base, api_key, login_id, password, code = sys.argv[1:6]
client = FusionAuthClient(api_key, base)

wrong = client.login({"loginId": login_id, "password": password + "x"})
first = client.login({"loginId": login_id, "password": password})
body = first.success_response or {}
second = client.two_factor_login({"twoFactorId": body.get("twoFactorId", ""), "code": code})
done = second.success_response or {}
print(json.dumps({
    "wrong": wrong.status,
    "first": first.status,
    "twoFactorId": bool(body.get("twoFactorId")),
    "methods": [m.get("method") for m in body.get("methods", [])],
    "second": second.status,
    "token": bool(done.get("token")),
    "refreshToken": bool(done.get("refreshToken")),
    "userEmail": (done.get("user") or {}).get("email"),
    "twoFactorMethods": [m.get("method") for m in ((done.get("user") or {}).get("twoFactor") or {}).get("methods", [])],
}))
