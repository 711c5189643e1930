"""Callbacks without I/O: where one may go (guard.py), the signature, back-off, job time-out."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.services.callbacks import guard, signing
from core.services.callbacks.sender import backoff_s
from core.settings import load_settings
from core.worker import job_timeout_s

REFUSED = [
    "https://127.0.0.1/cb",
    "https://10.1.2.3/cb",
    "https://172.16.0.1/cb",
    "https://192.168.1.1/cb",
    "https://169.254.169.254/latest/meta-data",  # the cloud metadata service
    "https://100.64.0.1/cb",  # carrier-grade NAT (shared)
    "https://0.0.0.0/cb",
    "https://[::1]/cb",
    "https://[fe80::1]/cb",
    "https://[fd00::1]/cb",
    "https://[::ffff:127.0.0.1]/cb",  # IPv4-mapped loopback
    "https://224.0.0.1/cb",
    "https://localhost/cb",
    "https://api.localhost/cb",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(InputError, match="private, loopback or link-local"):
        guard.check_url(url, allow_private=False, allow_http=False)
    assert guard.check_url(url, allow_private=True, allow_http=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://8.8.8.8/cb", "must start with https://"),
        ("ftp://example.com/cb", "must start with https://"),
        ("example.com/cb", "must start with https://"),
        ("https://user:pw@example.com/cb", "user name or password"),
        ("https:///cb", "no host"),
        ("https://example.com/cb#x", "fragment"),
        ("https://example.com/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(InputError, match=why):
        guard.check_url(url, allow_private=False, allow_http=False)


def test_public_https_is_accepted_and_http_only_when_allowed() -> None:
    assert guard.check_url(" https://8.8.8.8/cb?x=1 ", allow_private=False, allow_http=False) == (
        "https://8.8.8.8/cb?x=1"
    )
    assert guard.check_url("http://example.com/cb", allow_private=False, allow_http=True)


def test_signature_is_hmac_sha256_over_timestamp_dot_body_newest_first() -> None:
    body = b'{"id":"evt_1"}'
    got = signing.headers(["new", "old"], event_id="evt_1", timestamp=1700000000, body=body)
    expected = [
        hmac.new(key, b"1700000000." + body, hashlib.sha256).hexdigest()
        for key in (b"new", b"old")
    ]
    assert got["AirGate-Signature"] == f"v1={expected[0]},v1={expected[1]}"
    assert (got["AirGate-Timestamp"], got["AirGate-Event-Id"]) == ("1700000000", "evt_1")


def test_backoff_doubles_from_first_to_max_with_jitter() -> None:
    for attempts, nominal in ((1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (50, 3600)):
        gaps = [backoff_s(attempts, first_s=10, max_s=3600) for _ in range(200)]
        assert all(nominal * 0.8 <= g <= min(3600, nominal * 1.2) for g in gaps)
        assert len(set(gaps)) > 1 or nominal == 3600  # jittered, except at the cap's ceiling


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(lambda s, rest: s + rest, st.sampled_from(["https://", "http://"]), st.text()),
    )
)
def test_any_text_is_a_url_or_an_input_error_never_anything_else(text: str) -> None:
    try:
        checked = guard.check_url(text, allow_private=False, allow_http=False)
    except InputError as exc:
        assert exc.fields["field"] == "url"
    else:
        assert checked.startswith("https://")


def test_a_callback_post_always_fits_in_its_job() -> None:
    """arq cancels a job at its time-out: a POST cut short would never record its attempt."""
    for timeout_s in (1.0, 10.0, 60.0):
        assert job_timeout_s(load_settings(callback_timeout_s=timeout_s)) > timeout_s
