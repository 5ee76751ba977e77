"""Read confidence: how much one pixel open says that a person read the email (issue 5, §3).

Pure and standard-library only. The rules (user agents, networks, the time window) live in
one data file, `open_rules.json` beside this module, so they can change without touching
code; this module only parses, validates and applies them.

Precedence, strongest first:

1. a scanner or bot user agent (an unconditional MACHINE rule) -> MACHINE;
2. a scanner network (role "scanner": Exchange Online Protection, Mimecast, ...) -> MACHINE;
3. a MACHINE rule that needs a network (Apple's generic prefetch from Apple's network);
4. an image-proxy user agent (Gmail, Yahoo) -> PROXY;
5. an open within `machine_within_seconds` of sending, from anything but a proxy -> MACHINE;
6. otherwise HUMAN: in doubt, a read counts.

The verdict carries a coarse network label from the rules file, never the address itself.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.domain import ReadConfidence, fast_open_reason

DEFAULT_RULES_PATH = Path(__file__).with_name("open_rules.json")
UNKNOWN_NETWORK = "unknown"

# Longer user agents are cut before matching: no client needs more, and it bounds the work.
_MAX_USER_AGENT = 1024
# Addresses, and verdicts per (user agent, network label), remembered before the memory
# starts afresh.
_MAX_REMEMBERED = 4096
# A label names a network coarsely; the shape rules out an address slipping in as a label.
_LABEL = re.compile(r"[a-z][a-z0-9-]*\Z")
_ROLES = frozenset({"scanner", "provider"})

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class OpenVerdict:
    confidence: ReadConfidence
    network: str  # a coarse label from the rules file ("unknown" if none), never an address
    reason: str  # one short human line, e.g. "Gmail image proxy (user agent)"


@dataclass(frozen=True)
class UserAgentRule:
    id: str
    confidence: ReadConfidence
    pattern: re.Pattern[str]
    reason: str
    network: str | None = None  # the label this rule gives; None: the address's label
    only_from_networks: frozenset[str] = frozenset()  # empty: from anywhere


@dataclass(frozen=True)
class NetworkRule:
    label: str
    role: str  # "scanner": MACHINE on its own; "provider": a label, no verdict
    reason: str
    networks: tuple[_IPNetwork, ...]


@dataclass(frozen=True)
class HitVerdict:
    """What a hit says on its own, at the pixel; the time since sending, known only to the
    database, may still make it MACHINE (`settle`)."""

    verdict: OpenVerdict  # the verdict if the open came late enough (or whatever its time)
    machine_within_seconds: float | None  # a faster open is MACHINE; None: final as it is
    fast_network: str  # the network label of a too-fast open


@dataclass(frozen=True)
class OpenRules:
    """The parsed rules file: regexes compiled and networks parsed once, at load."""

    machine_within_seconds: float | None  # None: no time rule
    user_agent_rules: tuple[UserAgentRule, ...]
    networks: tuple[NetworkRule, ...]
    # The pixel asks on every hit: networks are indexed by prefix, and verdicts are
    # remembered per (user agent, network label), of which real traffic has few.
    _by_prefix: dict[int, list[tuple[int, dict[int, NetworkRule]]]] = field(
        init=False, repr=False, compare=False
    )
    _verdicts: dict[tuple[str, str | None], HitVerdict] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _addresses: dict[str, NetworkRule | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        by_prefix: dict[int, dict[int, dict[int, NetworkRule]]] = {}
        for rule in self.networks:
            for network in rule.networks:
                same_length = by_prefix.setdefault(network.version, {})
                starts = same_length.setdefault(network.prefixlen, {})
                # Listed twice: the first listing wins, as in the file's order.
                starts.setdefault(int(network.network_address), rule)
        bits = {4: 32, 6: 128}
        object.__setattr__(
            self,
            "_by_prefix",
            {
                # (mask, starts), most specific first
                version: [
                    (((1 << length) - 1) << (bits[version] - length), starts)
                    for length, starts in sorted(lengths.items(), reverse=True)
                ]
                for version, lengths in by_prefix.items()
            },
        )

    def network_for(self, address: _IPAddress | None) -> NetworkRule | None:
        """The rule of the most specific listed network holding the address, if any."""
        if address is None:
            return None
        number = int(address)
        for mask, starts in self._by_prefix.get(address.version, ()):
            rule = starts.get(number & mask)
            if rule is not None:
                return rule
        return None


def load_rules(path: Path | None = None) -> OpenRules:
    """Read and validate the rules file (default: `open_rules.json` beside this module).

    Raises ValueError naming the file and the faulty entry when it is malformed; a missing
    or unreadable file raises the OSError of the read."""
    source = DEFAULT_RULES_PATH if path is None else path
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{source}: not UTF-8 text: {error.reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{source}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    try:
        return _parse(document)
    except _RulesError as error:
        raise ValueError(f"{source}: {error}") from None


def classify_open(
    rules: OpenRules,
    *,
    user_agent: str | None,
    client_ip: str | None,
    seconds_since_sent: float | None,
) -> OpenVerdict:
    """Classify one pixel open. Never raises on odd input: a malformed address counts as
    no address, and an unknown or non-finite time as no time."""
    hit = classify_hit(rules, user_agent=user_agent, client_ip=client_ip)
    return settle(hit, seconds_since_sent)


def settle(hit: HitVerdict, seconds_since_sent: float | None) -> OpenVerdict:
    """The hit's verdict once the time since sending is known (None: unknown)."""
    elapsed = _finite(seconds_since_sent)
    if hit.machine_within_seconds is None or elapsed is None:
        return hit.verdict
    if elapsed <= hit.machine_within_seconds:
        return OpenVerdict(ReadConfidence.MACHINE, hit.fast_network, fast_open_reason(elapsed))
    return hit.verdict


def classify_hit(rules: OpenRules, *, user_agent: str | None, client_ip: str | None) -> HitVerdict:
    """Everything but the time rule: what the pixel itself can tell from the request."""
    agent = (user_agent or "").strip()[:_MAX_USER_AGENT]
    address = client_ip or ""
    if address in rules._addresses:
        network = rules._addresses[address]
    else:
        network = rules.network_for(_parse_address(client_ip))
        _remember(rules._addresses, address, network)
    key = (agent, None if network is None else network.label)
    verdict = rules._verdicts.get(key)
    if verdict is None:
        verdict = _classify(rules, agent, network)
        _remember(rules._verdicts, key, verdict)
    return verdict


def _remember(memory: dict[Any, Any], key: object, value: object) -> None:
    if len(memory) >= _MAX_REMEMBERED:
        memory.clear()  # bounded: a flood of odd agents or addresses only costs time
    memory[key] = value


def _classify(rules: OpenRules, agent: str, network: NetworkRule | None) -> HitVerdict:
    network_label = network.label if network is not None else UNKNOWN_NETWORK
    in_networks = frozenset() if network is None else frozenset({network.label})

    def matching(confidence: ReadConfidence, *, conditional: bool) -> UserAgentRule | None:
        for rule in rules.user_agent_rules:
            if (
                rule.confidence is confidence
                and bool(rule.only_from_networks) is conditional
                and (not conditional or rule.only_from_networks & in_networks)
                and rule.pattern.search(agent)
            ):
                return rule
        return None

    def final(confidence: ReadConfidence, rule: UserAgentRule | None, reason: str) -> HitVerdict:
        label = rule.network if rule is not None and rule.network else network_label
        return HitVerdict(OpenVerdict(confidence, label, reason), None, network_label)

    def unless_fast(rule: UserAgentRule | None, reason: str) -> HitVerdict:
        label = rule.network if rule is not None and rule.network else network_label
        verdict = OpenVerdict(ReadConfidence.HUMAN, label, reason)
        return HitVerdict(verdict, rules.machine_within_seconds, network_label)

    scanner_agent = matching(ReadConfidence.MACHINE, conditional=False)
    if scanner_agent is not None:
        return final(ReadConfidence.MACHINE, scanner_agent, scanner_agent.reason)
    if network is not None and network.role == "scanner":
        return final(ReadConfidence.MACHINE, None, network.reason)
    prefetch = matching(ReadConfidence.MACHINE, conditional=True)
    if prefetch is not None:
        return final(ReadConfidence.MACHINE, prefetch, prefetch.reason)
    proxy = matching(ReadConfidence.PROXY, conditional=False) or matching(
        ReadConfidence.PROXY, conditional=True
    )
    if proxy is not None:
        return final(ReadConfidence.PROXY, proxy, proxy.reason)

    # From here on, an open within the time window of sending is MACHINE (`settle`).
    human = matching(ReadConfidence.HUMAN, conditional=False) or matching(
        ReadConfidence.HUMAN, conditional=True
    )
    if human is not None:
        return unless_fast(human, human.reason)
    if not agent:
        return unless_fast(None, "no user agent (counted as a read)")
    return unless_fast(None, "unrecognised user agent (counted as a read)")


# --- helpers ---


def _parse_address(value: str | None) -> _IPAddress | None:
    if not value:
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:66.249.80.1 is 66.249.80.1 behind a dual stack
    return address


def _finite(value: float | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    # A negative age means the open landed before the send was recorded (a fetch inside
    # the SMTP transaction): as fast as it gets.
    return max(number, 0.0)


class _RulesError(Exception):
    pass


def _parse(document: object) -> OpenRules:
    top = _object(
        document,
        "the file",
        required={"version", "time_rule", "user_agent_rules", "networks"},
        optional={"note"},
    )
    if top["version"] != 1 or isinstance(top["version"], bool):
        raise _RulesError(f"version: expected 1, got {top['version']!r}")

    time_rule = _object(top["time_rule"], "time_rule", required={"machine_within_seconds", "note"})
    window = time_rule["machine_within_seconds"]
    if window is not None and (
        isinstance(window, bool)
        or not isinstance(window, int | float)
        or not math.isfinite(window)
        or window < 0
    ):
        raise _RulesError(
            "time_rule.machine_within_seconds: expected a number of seconds >= 0 or null,"
            f" got {window!r}"
        )
    _text(time_rule["note"], "time_rule.note")

    networks = _networks(_list(top["networks"], "networks"))
    labels = {rule.label for rule in networks}
    agents = _user_agent_rules(_list(top["user_agent_rules"], "user_agent_rules"), labels)
    return OpenRules(None if window is None else float(window), agents, networks)


def _networks(entries: Sequence[object]) -> tuple[NetworkRule, ...]:
    rules: list[NetworkRule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = _named(f"networks[{index}]", entry, "label")
        fields = _object(entry, where, required={"label", "role", "reason", "cidrs", "note"})
        label = _label(fields["label"], f"{where}.label")
        if label in seen:
            raise _RulesError(f"{where}.label: duplicate label {label!r}")
        seen.add(label)
        role = fields["role"]
        if role not in _ROLES:
            raise _RulesError(f"{where}.role: expected one of {sorted(_ROLES)}, got {role!r}")
        cidrs = _list(fields["cidrs"], f"{where}.cidrs")
        if not cidrs:
            raise _RulesError(f"{where}.cidrs: empty")
        parsed: list[_IPNetwork] = []
        for position, cidr in enumerate(cidrs):
            if not isinstance(cidr, str):
                raise _RulesError(
                    f"{where}.cidrs[{position}]: expected a CIDR string, got {cidr!r}"
                )
            try:
                parsed.append(ipaddress.ip_network(cidr, strict=True))
            except ValueError as error:
                raise _RulesError(f"{where}.cidrs[{position}]: {error}") from None
        reason = _text(fields["reason"], f"{where}.reason")
        _text(fields["note"], f"{where}.note")
        rules.append(NetworkRule(label, str(role), reason, tuple(parsed)))
    return tuple(rules)


def _user_agent_rules(entries: Sequence[object], labels: set[str]) -> tuple[UserAgentRule, ...]:
    rules: list[UserAgentRule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = _named(f"user_agent_rules[{index}]", entry, "id")
        fields = _object(
            entry,
            where,
            required={"id", "confidence", "pattern", "reason", "note"},
            optional={"network", "only_from_networks", "case_sensitive"},
        )
        rule_id = _label(fields["id"], f"{where}.id")
        if rule_id in seen:
            raise _RulesError(f"{where}.id: duplicate id {rule_id!r}")
        seen.add(rule_id)

        confidence = fields["confidence"]
        if confidence not in {member.value for member in ReadConfidence}:
            raise _RulesError(
                f"{where}.confidence: expected one of "
                f"{[member.value for member in ReadConfidence]}, got {confidence!r}"
            )
        case_sensitive = fields.get("case_sensitive", False)
        if not isinstance(case_sensitive, bool):
            raise _RulesError(f"{where}.case_sensitive: expected true or false")
        pattern_text = _text(fields["pattern"], f"{where}.pattern")
        try:
            pattern = re.compile(pattern_text, 0 if case_sensitive else re.IGNORECASE)
        except re.error as error:
            raise _RulesError(f"{where}.pattern: not a valid regular expression: {error}") from None

        network = fields.get("network")
        if network is not None:
            network = _label(network, f"{where}.network")
        only_from: frozenset[str] = frozenset()
        if "only_from_networks" in fields:
            names = _list(fields["only_from_networks"], f"{where}.only_from_networks")
            if not names:
                raise _RulesError(
                    f"{where}.only_from_networks: empty (leave it out for 'anywhere')"
                )
            for name in names:
                if name not in labels:
                    raise _RulesError(
                        f"{where}.only_from_networks: {name!r} is not a label in 'networks'"
                    )
            only_from = frozenset(str(name) for name in names)

        reason = _text(fields["reason"], f"{where}.reason")
        _text(fields["note"], f"{where}.note")
        rules.append(
            UserAgentRule(rule_id, ReadConfidence(confidence), pattern, reason, network, only_from)
        )
    return tuple(rules)


def _object(
    value: object,
    where: str,
    *,
    required: AbstractSet[str],
    optional: AbstractSet[str] = frozenset(),
) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _RulesError(f"{where}: expected an object, got {type(value).__name__}")
    problems = []
    missing = sorted(required - value.keys())
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    unknown = sorted(value.keys() - required - optional)
    if unknown:
        problems.append(f"unknown key {', '.join(unknown)}")
    if problems:
        raise _RulesError(f"{where}: {'; '.join(problems)}")
    return value


def _named(where: str, entry: object, key: str) -> str:
    """`networks[3]` becomes `networks[3] ("barracuda")` when the entry has its name."""
    name = entry.get(key) if isinstance(entry, dict) else None
    return f'{where} ("{name}")' if isinstance(name, str) and name else where


def _list(value: object, where: str) -> Sequence[object]:
    if not isinstance(value, list):
        raise _RulesError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _RulesError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _label(value: object, where: str) -> str:
    text = _text(value, where)
    if not _LABEL.match(text):
        raise _RulesError(
            f"{where}: {text!r} is not a label (lowercase letters, digits and '-', "
            "starting with a letter)"
        )
    return text
