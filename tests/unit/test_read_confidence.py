"""Read confidence (issue 5, §3): pixel opens classified as HUMAN, PROXY or MACHINE from the
user agent, the network and the time since sending, by the rules in pixel/open_rules.json.

The user agents are real-world strings, each from the source named beside it; the addresses
are inside the published ranges the rules list, or documentation addresses (RFC 5737 /
RFC 3849) standing for a reader's own connection."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.domain import ReadConfidence
from pixel.confidence import (
    DEFAULT_RULES_PATH,
    OpenRules,
    OpenVerdict,
    classify_hit,
    classify_open,
    load_rules,
    settle,
)

HUMAN, PROXY, MACHINE = ReadConfidence.HUMAN, ReadConfidence.PROXY, ReadConfidence.MACHINE
HOUR = 3600.0

# --- real-world user agents ---

# ScientiaMobile, "What is Google Image Proxy?" (and the WURFL note on it).
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
# GMass "Dealing with false opens in Gmail" (2019); Bird/SparkPost "Gmail prefetching" (2022).
GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)
# The Yahoo help page named in the string itself.
YAHOO_PROXY = (
    "Mozilla/5.0 (compatible; YahooMailProxy; "
    "https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html)"
)
# ua-parser/uap-core issue 509: "Apple Mail Privacy Protection forces ... Mozilla/5.0".
APPLE_MPP = "Mozilla/5.0"
# Apple Mail with Privacy Protection off: WebKit tokens, no Safari token.
APPLE_MAIL_MACOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
APPLE_MAIL_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
APPLE_MAIL_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
# Outlook for Windows: the client's own string and the Word engine's image fetch.
OUTLOOK_DESKTOP = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)"
OUTLOOK_DESKTOP_WORD_ENGINE = (
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0; SLCC2; "
    ".NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; .NET4.0C; .NET4.0E; "
    "BCP 1.2 GPO; Microsoft Outlook 16.0.9029; Microsoft Outlook 16.0.9029; ms-office; MSOffice 16)"
)
# Outlook on the web in Microsoft Edge.
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
)
THUNDERBIRD = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"
)
THUNDERBIRD_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:60.0) Gecko/20100101 Thunderbird/60.2.1"
# Samsung Email renders in an Android WebView ("; wv)" and "Version/4.0": Chrome's UA docs).
SAMSUNG_EMAIL = (
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:61.0) Gecko/20100101 Firefox/61.0"
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.0.3 Safari/605.1.15"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
# A Safe Links pre-check seen from 20.72.100.79 (edalzell/laravel-passwordless-login #79).
SAFE_LINKS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/97.0.4692.99 Safari/537.36"
)
# Braze's bot-filtering docs and GMass's bot list.
BARRACUDA_SENTINEL = "Barracuda Sentinel (EE)"
OFFICE_EXISTENCE_DISCOVERY = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "Microsoft Office Existence Discovery"
)
APPLE_DATAACCESSD = "iOS/16.5.1 (20F75) dataaccessd/1.0"
PYTHON_REQUESTS = "python-requests/2.31.0"
CURL = "curl/8.4.0"
GO_HTTP = "Go-http-client/1.1"
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.109 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# --- addresses ---

READER_V4 = "203.0.113.7"  # a reader's own connection (documentation range)
READER_V4_B = "198.51.100.20"
READER_V6 = "2001:db8:85a3::8a2e:370:7334"
GOOGLE_V4 = "66.249.84.3"  # 66.249.80.0/20, _netblocks.google.com
GOOGLE_V4_B = "66.102.8.10"  # 66.102.0.0/20
GOOGLE_V6 = "2a00:1450:400c:c0b::9a"  # 2a00:1450:4000::/36, _netblocks2.google.com
APPLE_V4 = "17.58.101.23"  # 17.0.0.0/8
APPLE_V6 = "2620:149:a44:1::1f"  # 2620:149::/32
EOP_V4 = "104.47.1.254"  # seen running Safe Links pre-checks (laravel-passwordless-login #79)
EOP_V4_B = "40.107.22.50"
EOP_V6 = "2a01:111:f403:2c0d::1"
MIMECAST_V4 = "205.139.110.61"
PROOFPOINT_V4 = "148.163.130.17"
BARRACUDA_V4 = "209.222.82.10"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    user_agent: str | None
    client_ip: str | None
    seconds_since_sent: float | None
    confidence: ReadConfidence
    network: str


TABLE = [
    # image proxies: a read, fetched on the reader's behalf
    Case("gmail proxy", GMAIL_PROXY, GOOGLE_V4, HOUR, PROXY, "google-image-proxy"),
    Case("gmail proxy over ipv6", GMAIL_PROXY, GOOGLE_V6, 45, PROXY, "google-image-proxy"),
    Case(
        "gmail proxy right after sending",
        GMAIL_PROXY,
        GOOGLE_V4_B,
        0.5,
        PROXY,
        "google-image-proxy",
    ),
    Case("yahoo proxy", YAHOO_PROXY, "98.137.11.163", 900, PROXY, "yahoo-proxy"),
    # prefetch: not a read
    Case("gmail prefetch", GMAIL_PREFETCH, GOOGLE_V4_B, 1.5, MACHINE, "gmail-prefetch"),
    Case("apple mpp prefetch", APPLE_MPP, APPLE_V4, 4, MACHINE, "apple-mail-privacy"),
    Case(
        "apple mpp over ipv6, a day later",
        APPLE_MPP,
        APPLE_V6,
        86400,
        MACHINE,
        "apple-mail-privacy",
    ),
    Case("apple mpp with no user agent", None, APPLE_V4, 600, MACHINE, "apple-mail-privacy"),
    # mail clients and browsers: a person
    Case("apple mail on macos", APPLE_MAIL_MACOS, READER_V4, 600, HUMAN, "unknown"),
    Case("apple mail on ios", APPLE_MAIL_IOS, READER_V4_B, 120, HUMAN, "unknown"),
    Case("apple mail on ipad", APPLE_MAIL_IPAD, READER_V6, 7200, HUMAN, "unknown"),
    Case("outlook desktop", OUTLOOK_DESKTOP, READER_V4, 300, HUMAN, "unknown"),
    Case(
        "outlook desktop word engine", OUTLOOK_DESKTOP_WORD_ENGINE, READER_V4, 30, HUMAN, "unknown"
    ),
    Case("outlook on the web in edge", EDGE, READER_V6, 45, HUMAN, "unknown"),
    Case("thunderbird on windows", THUNDERBIRD, READER_V4, 30, HUMAN, "unknown"),
    Case("thunderbird on linux", THUNDERBIRD_LINUX, READER_V4_B, HOUR, HUMAN, "unknown"),
    Case("samsung email", SAMSUNG_EMAIL, READER_V4_B, 60, HUMAN, "unknown"),
    Case("chrome", CHROME, READER_V4, 15, HUMAN, "unknown"),
    Case("chrome on android", CHROME_ANDROID, READER_V6, 8, HUMAN, "unknown"),
    Case("firefox", FIREFOX, READER_V4_B, HOUR, HUMAN, "unknown"),
    Case("safari", SAFARI, READER_V4, 3, HUMAN, "unknown"),
    Case("safari on iphone", SAFARI_IPHONE, READER_V4_B, 200, HUMAN, "unknown"),
    Case("a browser at google is a person", CHROME, "74.125.1.1", HOUR, HUMAN, "google"),
    Case("safari at apple is a person", SAFARI, APPLE_V4, HOUR, HUMAN, "apple"),
    # security scanners and sandboxes
    Case("safe links with no user agent", None, EOP_V4, 2, MACHINE, "microsoft-safe-links"),
    Case("safe links as chrome", SAFE_LINKS_CHROME, EOP_V4_B, 30, MACHINE, "microsoft-safe-links"),
    Case("safe links over ipv6", SAFE_LINKS_CHROME, EOP_V6, HOUR, MACHINE, "microsoft-safe-links"),
    Case(
        "office link check", OFFICE_EXISTENCE_DISCOVERY, READER_V4, 60, MACHINE, "microsoft-office"
    ),
    Case("mimecast as chrome", CHROME, MIMECAST_V4, 20, MACHINE, "mimecast"),
    Case("proofpoint as chrome", CHROME, PROOFPOINT_V4, 20, MACHINE, "proofpoint"),
    Case("barracuda sentinel", BARRACUDA_SENTINEL, READER_V4, HOUR, MACHINE, "barracuda"),
    Case("barracuda as firefox", FIREFOX, BARRACUDA_V4, 10, MACHINE, "barracuda"),
    # bots
    Case("python requests", PYTHON_REQUESTS, READER_V4, HOUR, MACHINE, "unknown"),
    Case("curl", CURL, READER_V4_B, HOUR, MACHINE, "unknown"),
    Case("go http client", GO_HTTP, READER_V6, HOUR, MACHINE, "unknown"),
    Case("headless chrome", HEADLESS_CHROME, READER_V4, HOUR, MACHINE, "unknown"),
    Case("googlebot", GOOGLEBOT, "66.249.81.20", HOUR, MACHINE, "google"),
    Case("apple background sync", APPLE_DATAACCESSD, READER_V4, HOUR, MACHINE, "unknown"),
    # time
    Case("chrome a second after sending", CHROME, READER_V4, 1, MACHINE, "unknown"),
    Case("thunderbird with no time known", THUNDERBIRD, READER_V4, None, HUMAN, "unknown"),
    # nothing known
    Case("nothing known", None, None, None, HUMAN, "unknown"),
    Case("a bare mozilla outside apple", APPLE_MPP, READER_V4, HOUR, HUMAN, "unknown"),
]


@pytest.fixture(scope="module")
def rules() -> OpenRules:
    return load_rules()


def classify(
    rules: OpenRules,
    user_agent: str | None,
    client_ip: str | None = None,
    seconds_since_sent: float | None = None,
) -> OpenVerdict:
    return classify_open(
        rules, user_agent=user_agent, client_ip=client_ip, seconds_since_sent=seconds_since_sent
    )


def test_the_table_has_at_least_25_real_world_user_agents() -> None:
    assert len({case.user_agent for case in TABLE if case.user_agent}) >= 25


@pytest.mark.parametrize("case", TABLE, ids=[case.name for case in TABLE])
def test_real_world_opens_get_the_expected_confidence_and_network(
    rules: OpenRules, case: Case
) -> None:
    verdict = classify(rules, case.user_agent, case.client_ip, case.seconds_since_sent)

    assert (verdict.confidence, verdict.network) == (case.confidence, case.network), verdict
    assert verdict.reason.strip()
    assert "\n" not in verdict.reason


# --- the reasons read as one short line ---


def test_the_reason_says_what_was_recognised(rules: OpenRules) -> None:
    assert classify(rules, GMAIL_PROXY, GOOGLE_V4, HOUR).reason == "Gmail image proxy (user agent)"
    assert "Apple Mail Privacy Protection" in classify(rules, APPLE_MPP, APPLE_V4, HOUR).reason
    assert "Safe Links" in classify(rules, None, EOP_V4, HOUR).reason
    assert classify(rules, THUNDERBIRD, READER_V4, HOUR).reason == "Thunderbird (user agent)"


# --- precedence ---


def test_a_scanner_network_wins_over_a_proxy_user_agent(rules: OpenRules) -> None:
    verdict = classify(rules, GMAIL_PROXY, EOP_V4, HOUR)

    assert (verdict.confidence, verdict.network) == (MACHINE, "microsoft-safe-links")


def test_a_scanner_user_agent_wins_over_a_provider_network(rules: OpenRules) -> None:
    verdict = classify(rules, BARRACUDA_SENTINEL, GOOGLE_V4, HOUR)

    assert (verdict.confidence, verdict.network) == (MACHINE, "barracuda")


def test_a_browser_from_a_scanner_network_is_a_machine(rules: OpenRules) -> None:
    for address in (EOP_V4, MIMECAST_V4, PROOFPOINT_V4, BARRACUDA_V4):
        assert classify(rules, SAFARI, address, HOUR).confidence is MACHINE, address


def test_apples_generic_prefetch_needs_apples_network(rules: OpenRules) -> None:
    assert classify(rules, APPLE_MPP, APPLE_V4, HOUR).confidence is MACHINE
    assert classify(rules, APPLE_MPP, READER_V4, HOUR).confidence is HUMAN
    assert classify(rules, APPLE_MPP, None, HOUR).confidence is HUMAN


def test_apple_mail_with_webkit_tokens_from_apples_network_is_a_person(rules: OpenRules) -> None:
    verdict = classify(rules, APPLE_MAIL_IOS, APPLE_V4, HOUR)

    assert (verdict.confidence, verdict.network) == (HUMAN, "apple")


def test_an_image_proxy_is_recognised_from_any_network(rules: OpenRules) -> None:
    for address in (GOOGLE_V4, READER_V4, None, "garbage"):
        assert classify(rules, GMAIL_PROXY, address, HOUR).confidence is PROXY, address


# --- the time rule ---


def test_an_open_at_exactly_the_window_is_a_machine(rules: OpenRules) -> None:
    window = rules.machine_within_seconds

    verdict = classify(rules, CHROME, READER_V4, window)

    assert verdict.confidence is MACHINE
    assert verdict.reason == f"opened {window:g} s after sending"


def test_an_open_just_past_the_window_is_a_person(rules: OpenRules) -> None:
    window = rules.machine_within_seconds
    assert window is not None

    assert classify(rules, CHROME, READER_V4, window + 0.01).confidence is HUMAN


def test_the_shipped_window_is_two_seconds(rules: OpenRules) -> None:
    assert rules.machine_within_seconds == 2.0
    assert classify(rules, CHROME, READER_V4, 2.0).confidence is MACHINE
    assert classify(rules, CHROME, READER_V4, 2.5).confidence is HUMAN


def test_an_open_at_the_moment_of_sending_is_a_machine(rules: OpenRules) -> None:
    verdict = classify(rules, THUNDERBIRD, READER_V4, 0)

    assert (verdict.confidence, verdict.reason) == (MACHINE, "opened 0 s after sending")


def test_an_open_before_the_send_was_recorded_counts_as_instant(rules: OpenRules) -> None:
    verdict = classify(rules, CHROME, READER_V4, -3.0)

    assert (verdict.confidence, verdict.reason) == (MACHINE, "opened 0 s after sending")


def test_the_reason_gives_the_seconds(rules: OpenRules) -> None:
    assert classify(rules, CHROME, READER_V4, 1.25).reason == "opened 1.2 s after sending"


def test_an_unknown_or_impossible_time_fires_no_time_rule(rules: OpenRules) -> None:
    for seconds in (None, float("nan"), float("inf"), float("-inf")):
        assert classify(rules, CHROME, READER_V4, seconds).confidence is HUMAN, seconds


def test_a_fast_proxy_open_stays_a_proxy_read(rules: OpenRules) -> None:
    assert classify(rules, GMAIL_PROXY, GOOGLE_V4, 0.2).confidence is PROXY
    assert classify(rules, YAHOO_PROXY, None, 1).confidence is PROXY


def test_a_fast_open_keeps_the_more_specific_machine_reason(rules: OpenRules) -> None:
    verdict = classify(rules, CURL, READER_V4, 0.1)

    assert verdict.reason == "HTTP library, not a mail client (user agent)"


def test_a_fast_open_from_a_provider_network_keeps_its_label(rules: OpenRules) -> None:
    verdict = classify(rules, CHROME, GOOGLE_V4, 1)

    assert (verdict.confidence, verdict.network) == (MACHINE, "google")


def test_nothing_known_but_a_fast_open_is_a_machine(rules: OpenRules) -> None:
    verdict = classify(rules, None, None, 1.0)

    assert (verdict.confidence, verdict.network) == (MACHINE, "unknown")


def test_the_window_comes_from_the_rules_file(tmp_path: Path) -> None:
    document = _shipped()
    document["time_rule"]["machine_within_seconds"] = 10
    rules = load_rules(_write(tmp_path, document))

    assert classify(rules, CHROME, READER_V4, 9.5).confidence is MACHINE
    assert classify(rules, CHROME, READER_V4, 10.5).confidence is HUMAN


def test_a_zero_window_only_catches_instant_opens(tmp_path: Path) -> None:
    document = _shipped()
    document["time_rule"]["machine_within_seconds"] = 0
    rules = load_rules(_write(tmp_path, document))

    assert classify(rules, CHROME, READER_V4, 0).confidence is MACHINE
    assert classify(rules, CHROME, READER_V4, 0.1).confidence is HUMAN


def test_a_null_window_turns_the_time_rule_off(tmp_path: Path) -> None:
    document = _shipped()
    document["time_rule"]["machine_within_seconds"] = None
    rules = load_rules(_write(tmp_path, document))

    assert classify(rules, CHROME, READER_V4, 0).confidence is HUMAN
    assert classify(rules, CURL, READER_V4, HOUR).confidence is MACHINE


def test_the_time_rule_waits_for_the_send_time_and_keeps_the_address_label(
    rules: OpenRules,
) -> None:
    # The pixel judges what it can; the database applies the time since sending
    hit = classify_hit(rules, user_agent=CHROME, client_ip=GOOGLE_V4)

    assert hit.verdict.confidence is HUMAN
    assert hit.machine_within_seconds == 2.0
    assert settle(hit, 1.5) == OpenVerdict(MACHINE, "google", "opened 1.5 s after sending")
    assert settle(hit, 2.5) == hit.verdict
    assert settle(hit, None) == hit.verdict


def test_a_final_verdict_ignores_the_time(rules: OpenRules) -> None:
    hit = classify_hit(rules, user_agent=GMAIL_PROXY, client_ip=GOOGLE_V4)

    assert hit.machine_within_seconds is None
    assert settle(hit, 0).confidence is PROXY


# --- addresses ---


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("2001:4860:4000::1", "google"),  # the brief's 2001:4860:4000::/36
        ("2001:4860:4fff:ffff::1", "google"),  # its last /48
        ("2001:4860:5000::1", "unknown"),  # just past it
        ("2620:149::1", "apple"),
        ("2a01:b740::5", "apple"),
        ("2a01:111:f400::25", "microsoft-safe-links"),
        ("2A01:111:F403:2C0D:0000:0000:0000:0001", "microsoft-safe-links"),  # uppercase, exploded
        ("[2620:149::1]", "apple"),  # bracketed, as in a URL or a Forwarded header
        ("::ffff:17.58.101.23", "apple"),  # IPv4-mapped, as a dual-stack socket reports it
        ("fe80::1%eth0", "unknown"),  # link-local with a zone
        (READER_V6, "unknown"),
    ],
)
def test_ipv6_addresses_are_matched_against_the_ipv6_ranges(
    rules: OpenRules, address: str, network: str
) -> None:
    assert classify(rules, SAFARI, address, HOUR).network == network


def test_a_generic_prefetch_over_ipv6_from_apple_is_a_machine(rules: OpenRules) -> None:
    assert classify(rules, APPLE_MPP, "2a01:b740:a42::7", HOUR).confidence is MACHINE


def test_the_range_edges_are_exact(rules: OpenRules) -> None:
    assert classify(rules, CHROME, "66.249.80.0", HOUR).network == "google"
    assert classify(rules, CHROME, "66.249.95.255", HOUR).network == "google"
    assert classify(rules, CHROME, "66.249.96.0", HOUR).network == "unknown"
    assert classify(rules, CHROME, "104.47.127.255", HOUR).confidence is MACHINE
    assert classify(rules, CHROME, "104.47.128.0", HOUR).confidence is HUMAN


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "not-an-ip",
        "999.1.1.1",
        "17.0.0",
        "17.58.101.23:443",
        "17.58.101.23, 10.0.0.1",
        "2620:149::1::2",
        "17.0.0.0/8",
        "unknown",
        "\x00",
        "17.58.101.23\n",  # surrounding whitespace is forgiven, this one is Apple
    ],
)
def test_a_malformed_address_is_ignored_without_an_error(rules: OpenRules, address: str) -> None:
    verdict = classify(rules, APPLE_MPP, address, HOUR)

    expected = "apple-mail-privacy" if address.strip() == APPLE_V4 else "unknown"
    assert verdict.network == expected


def test_a_malformed_address_still_lets_the_user_agent_decide(rules: OpenRules) -> None:
    assert classify(rules, CURL, "999.999.999.999", HOUR).confidence is MACHINE
    assert classify(rules, GMAIL_PROXY, "nonsense", HOUR).confidence is PROXY
    assert classify(rules, THUNDERBIRD, "nonsense", HOUR).confidence is HUMAN


# --- missing and odd user agents ---


def test_no_user_agent_and_no_address_is_a_person(rules: OpenRules) -> None:
    verdict = classify(rules, None, None, HOUR)

    assert verdict == OpenVerdict(HUMAN, "unknown", "no user agent (counted as a read)")


def test_an_empty_user_agent_is_the_same_as_none(rules: OpenRules) -> None:
    assert classify(rules, "", READER_V4, HOUR) == classify(rules, None, READER_V4, HOUR)
    assert classify(rules, "   ", APPLE_V4, HOUR) == classify(rules, None, APPLE_V4, HOUR)


def test_an_unrecognised_user_agent_is_a_person(rules: OpenRules) -> None:
    verdict = classify(rules, "SomeMailApp/3.2 (Linux)", READER_V4, HOUR)

    assert (verdict.confidence, verdict.reason) == (
        HUMAN,
        "unrecognised user agent (counted as a read)",
    )


def test_android_http_stacks_are_not_called_machines(rules: OpenRules) -> None:
    # Native Android mail apps load images with these defaults: in doubt, a read.
    for agent in (
        "Dalvik/2.1.0 (Linux; U; Android 12; ALN-AL80 Build/HUAWEIALN-AL80)",
        "okhttp/4.10.0",
    ):
        assert classify(rules, agent, READER_V4, HOUR).confidence is HUMAN, agent


def test_a_phone_named_like_a_bot_is_not_a_crawler(rules: OpenRules) -> None:
    cubot = (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X19 Build/QP1A.190711.020) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36"
    )
    assert classify(rules, cubot, READER_V4, HOUR).confidence is HUMAN


def test_a_huge_user_agent_is_handled(rules: OpenRules) -> None:
    assert classify(rules, "A" * 100_000, READER_V4, HOUR).confidence is HUMAN
    assert classify(rules, CURL + "x" * 100_000, READER_V4, HOUR).confidence is MACHINE


def test_user_agent_tokens_match_regardless_of_case(rules: OpenRules) -> None:
    assert classify(rules, "Mozilla/5.0 googleimageproxy", None, HOUR).confidence is PROXY
    assert classify(rules, "MIMECAST link check", None, HOUR).network == "mimecast"


# --- the raw address never leaves ---


def test_the_verdict_never_contains_the_address(rules: OpenRules) -> None:
    addresses = {case.client_ip for case in TABLE if case.client_ip}
    addresses |= {"::ffff:17.58.101.23", "[2620:149::1]", "17.58.101.23:443"}
    for case in TABLE:
        for address in addresses:
            verdict = classify(rules, case.user_agent, address, case.seconds_since_sent)
            forms = {address, address.strip("[]")}
            try:
                parsed = ipaddress.ip_address(address.strip("[]"))
            except ValueError:
                pass
            else:
                forms |= {str(parsed), parsed.exploded}
            rendered = repr(verdict) + str(dataclasses.asdict(verdict))
            for form in forms:
                assert form not in rendered, (form, verdict)


def test_a_verdict_has_only_the_three_fields_and_cannot_be_changed(rules: OpenRules) -> None:
    verdict = classify(rules, CHROME, READER_V4, HOUR)

    assert [field.name for field in dataclasses.fields(verdict)] == [
        "confidence",
        "network",
        "reason",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.network = READER_V4  # type: ignore[misc]


# --- the rules file ---


def test_the_shipped_rules_file_loads_with_its_rules(rules: OpenRules) -> None:
    ids = {rule.id for rule in rules.user_agent_rules}
    labels = {network.label for network in rules.networks}

    assert {"gmail-image-proxy", "yahoo-mail-proxy", "apple-mail-privacy"} <= ids
    assert {"microsoft-safe-links", "mimecast", "proofpoint", "barracuda", "google", "apple"} <= (
        labels
    )


def test_every_shipped_rule_says_where_it_comes_from() -> None:
    document = _shipped()
    for entry in [*document["user_agent_rules"], *document["networks"], document["time_rule"]]:
        assert len(entry["note"]) > 40, entry


def test_the_brief_s_google_and_microsoft_ranges_are_in_the_file() -> None:
    document = _shipped()
    cidrs = {network["label"]: set(network["cidrs"]) for network in document["networks"]}
    assert {
        "66.249.80.0/20",
        "66.102.0.0/20",
        "64.233.160.0/19",
        "74.125.0.0/16",
        "2001:4860:4000::/36",
    } <= cidrs["google"]
    assert {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"} <= cidrs[
        "microsoft-safe-links"
    ]
    assert "17.0.0.0/8" in cidrs["apple"]


def test_load_rules_reads_a_given_path(tmp_path: Path) -> None:
    document = _shipped()
    document["networks"][0]["cidrs"] = ["192.0.2.0/24"]
    rules = load_rules(_write(tmp_path, document))

    assert classify(rules, CHROME, "192.0.2.9", HOUR).confidence is MACHINE
    assert classify(rules, CHROME, EOP_V4, HOUR).confidence is HUMAN


def test_a_rule_can_be_changed_without_touching_code(tmp_path: Path) -> None:
    # E.g. counting a bare "Mozilla/5.0" as Apple's prefetch from any network.
    document = _shipped()
    del _agent_rule(document, "apple-mail-privacy")["only_from_networks"]
    rules = load_rules(_write(tmp_path, document))

    verdict = classify(rules, APPLE_MPP, READER_V4, HOUR)
    assert (verdict.confidence, verdict.network) == (MACHINE, "apple-mail-privacy")


def _agent_rule(document: dict[str, Any], rule_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in document["user_agent_rules"] if r["id"] == rule_id]
    (rule,) = found
    return rule


def _network(document: dict[str, Any], label: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [n for n in document["networks"] if n["label"] == label]
    (network,) = found
    return network


Breakage = Callable[[dict[str, Any]], None]

BROKEN: list[tuple[str, Breakage, list[str]]] = [
    (
        "a bad regular expression",
        lambda d: _agent_rule(d, "mimecast").__setitem__("pattern", "mime(cast"),
        ['"mimecast"', "pattern", "regular expression"],
    ),
    (
        "a cidr with host bits",
        lambda d: _network(d, "google")["cidrs"].append("66.249.80.1/20"),
        ['"google"', "cidrs", "66.249.80.1/20"],
    ),
    (
        "a cidr that is not one",
        lambda d: _network(d, "apple")["cidrs"].append("17.0.0.0/33"),
        ['"apple"', "cidrs", "17.0.0.0/33"],
    ),
    (
        "an unknown confidence",
        lambda d: _agent_rule(d, "http-library").__setitem__("confidence", "MAYBE"),
        ['"http-library"', "confidence", "MAYBE"],
    ),
    (
        "a rule naming a network that is not listed",
        lambda d: _agent_rule(d, "apple-mail-privacy").__setitem__(
            "only_from_networks", ["icloud-relay"]
        ),
        ['"apple-mail-privacy"', "only_from_networks", "icloud-relay"],
    ),
    (
        "a misspelt key",
        lambda d: _agent_rule(d, "thunderbird").__setitem__(
            "patern", _agent_rule(d, "thunderbird").pop("pattern")
        ),
        ['"thunderbird"', "pattern", "patern"],
    ),
    (
        "a rule without its source",
        lambda d: _network(d, "barracuda").__delitem__("note"),
        ['"barracuda"', "missing note"],
    ),
    (
        "a negative window",
        lambda d: d["time_rule"].__setitem__("machine_within_seconds", -1),
        ["time_rule.machine_within_seconds", "-1"],
    ),
    (
        "a window that is not a number",
        lambda d: d["time_rule"].__setitem__("machine_within_seconds", "2"),
        ["time_rule.machine_within_seconds", "'2'"],
    ),
    (
        "a duplicate rule id",
        lambda d: d["user_agent_rules"].append(copy.deepcopy(_agent_rule(d, "thunderbird"))),
        ["duplicate id", "thunderbird"],
    ),
    (
        "an address used as a label",
        lambda d: _network(d, "mimecast").__setitem__("label", "205.139.110.0"),
        ["label", "205.139.110.0", "not a label"],
    ),
    (
        "an unknown role",
        lambda d: _network(d, "proofpoint").__setitem__("role", "blocker"),
        ['"proofpoint"', "role", "blocker"],
    ),
    (
        "an unsupported version",
        lambda d: d.__setitem__("version", 2),
        ["version", "2"],
    ),
    (
        "networks that are not a list",
        lambda d: d.__setitem__("networks", {"google": []}),
        ["networks", "expected a list"],
    ),
]


@pytest.mark.parametrize(
    ("breakage", "words"),
    [(breakage, words) for _, breakage, words in BROKEN],
    ids=[name for name, _, _ in BROKEN],
)
def test_a_malformed_rules_file_is_refused_naming_the_problem(
    tmp_path: Path, breakage: Breakage, words: list[str]
) -> None:
    document = _shipped()
    breakage(document)
    path = _write(tmp_path, document)

    with pytest.raises(ValueError, match="open_rules") as raised:
        load_rules(path)

    message = str(raised.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_a_rules_file_that_is_not_json_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "open_rules.json"
    path.write_text('{"version": 1,\n  "time_rule": }\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"not valid JSON.*line 2"):
        load_rules(path)


def test_a_rules_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open_rules.json"
    path.write_text("[]", encoding="utf-8")

    with pytest.raises(ValueError, match="expected an object, got list"):
        load_rules(path)


def test_a_rules_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open_rules.json"
    path.write_bytes(b'{"note": "\xff"}')

    with pytest.raises(ValueError, match="not UTF-8"):
        load_rules(path)


def test_a_missing_rules_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_rules(tmp_path / "absent.json")


def _shipped() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    return document


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "open_rules.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- remembering verdicts (the pixel asks on every hit) ---


def test_a_remembered_verdict_is_the_same_as_a_fresh_one(rules: OpenRules) -> None:
    for agent, address in [(GMAIL_PROXY, GOOGLE_V4), (CHROME, GOOGLE_V4), (CHROME, READER_V4)]:
        first = classify_hit(rules, user_agent=agent, client_ip=address)
        again = classify_hit(rules, user_agent=agent, client_ip=address)
        fresh = classify_hit(load_rules(), user_agent=agent, client_ip=address)
        assert first == again == fresh


def test_the_memory_of_verdicts_and_addresses_stays_bounded(rules: OpenRules) -> None:
    fresh = load_rules()
    for n in range(5000):
        classify_hit(fresh, user_agent=f"Agent/{n}", client_ip=f"10.0.{n // 256}.{n % 256}")

    assert 0 < len(fresh._verdicts) <= 4096
    assert 0 < len(fresh._addresses) <= 4096
    verdict = classify_hit(fresh, user_agent=CURL, client_ip=GOOGLE_V4).verdict
    assert verdict.confidence is MACHINE
