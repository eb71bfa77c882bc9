"""Drives Tessera's Verify API with the official `twilio` package, its HTTP client
pointed at Tessera instead of verify.twilio.com. Exits non-zero on the first
mismatch; prints OK when every step answered as Twilio would."""

import os
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

BASE = os.environ["TESSERA_URL"]


class TesseraHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://verify.twilio.com", BASE), *args, **kwargs)


def expect(what, got, want):
    if got != want:
        print(f"FAIL {what}: got {got!r}, want {want!r}")
        sys.exit(1)


client = Client(os.environ["ACCOUNT_SID"], os.environ["AUTH_TOKEN"], http_client=TesseraHttpClient())
verify = client.verify.v2

service = verify.services.create(friendly_name="Acme", code_length=6, custom_code_enabled=True)
expect("service sid", service.sid[:2], "VA")
expect("code length", service.code_length, 6)
expect("fetched name", verify.services(service.sid).fetch().friendly_name, "Acme")
expect("listed", [s.sid for s in verify.services.list()], [service.sid])

started = verify.services(service.sid).verifications.create(to="+15554443232", channel="sms", custom_code="424242")
expect("status", started.status, "pending")
expect("valid", started.valid, False)
expect("attempts", len(started.send_code_attempts), 1)

wrong = verify.services(service.sid).verification_checks.create(to="+15554443232", code="000000")
expect("wrong code", wrong.status, "pending")
right = verify.services(service.sid).verification_checks.create(verification_sid=started.sid, code="424242")
expect("right code", right.status, "approved")
expect("right code valid", right.valid, True)
expect("fetched", verify.services(service.sid).verifications(started.sid).fetch().status, "approved")

try:
    verify.services(service.sid).verification_checks.create(to="+15554443232", code="424242")
    expect("check after approval", "no error", "20404")
except TwilioRestException as e:
    expect("check after approval", (e.status, e.code), (404, 20404))

other = verify.services(service.sid).verifications.create(to="+15554440000", channel="call", custom_code="111111")
canceled = verify.services(service.sid).verifications(other.sid).update(status="canceled")
expect("canceled", canceled.status, "canceled")

try:
    verify.services(service.sid).verifications.create(to="not a number", channel="sms")
    expect("bad To", "no error", "60200")
except TwilioRestException as e:
    expect("bad To", (e.status, e.code), (400, 60200))

verify.services(service.sid).delete()
print("OK")
