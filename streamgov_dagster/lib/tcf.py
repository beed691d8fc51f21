"""IAB TCF v2 (v2.0 / v2.2) TC string decoder (stdlib only).

A TC string is one to four dot-separated segments, each base64url (padding optional) of a bit
string read most significant bit first. The first segment is the core segment (it starts with the
6-bit Version, which must be 2); every further segment starts with a 3-bit SegmentType:
1 = disclosed vendors, 2 = allowed vendors, 3 = publisher TC. Field widths follow the IAB
"Consent string and vendor list formats v2" specification.

``decode`` returns a JSON-serializable dict; every malformed input raises ``TCFError`` (a
ValueError) whose message says what is wrong without echoing the input. TCF v1.1 strings
(version 1) and GPP strings are rejected: they are not TCF v2 TC strings.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["TCFError", "decode", "granted_purposes"]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXBITS = {c: format(i, "06b") for i, c in enumerate(_ALPHABET)}

# Fixed part of the core segment, Version .. PublisherCC (6+36+36+12+12+6+12+12+6+1+1+12+24+24+1+12).
_CORE_FIXED_BITS = 213
_SEGMENT_NAMES = {1: "disclosed_vendors", 2: "allowed_vendors", 3: "publisher_tc"}
# A few bytes of range entries can name ~65k ids each; cap the ids one string may expand to so a
# hostile string cannot exhaust memory. Real strings stay far below (the GVL has ~1-2k vendors).
_MAX_EXPANDED_IDS = 1 << 20


class TCFError(ValueError):
    """A string that is not a well-formed TCF v2 TC string."""


class _Reader:
    """Reads unsigned big-endian fields from one segment's bit string."""

    def __init__(self, bits: str, where: str, budget: list[int]) -> None:
        self.bits = bits
        self.pos = 0
        self.where = where
        self.budget = budget  # shared one-element counter of ids still allowed

    def remaining(self) -> int:
        return len(self.bits) - self.pos

    def int(self, width: int, field: str) -> int:
        if width == 0:
            return 0
        if self.pos + width > len(self.bits):
            raise TCFError(f"{self.where} truncated: {field} needs {width} bits at bit {self.pos}, "
                           f"only {self.remaining()} left")
        value = int(self.bits[self.pos:self.pos + width], 2)
        self.pos += width
        return value

    def bool(self, field: str) -> bool:
        return self.int(1, field) == 1

    def bitfield(self, width: int, field: str) -> list[int]:
        """A bitfield where bit i (0-based) set means id i + 1."""
        if self.pos + width > len(self.bits):
            raise TCFError(f"{self.where} truncated: {field} needs {width} bits at bit {self.pos}, "
                           f"only {self.remaining()} left")
        chunk = self.bits[self.pos:self.pos + width]
        self.pos += width
        return [i + 1 for i, b in enumerate(chunk) if b == "1"]

    def letters(self, field: str) -> str:
        """Two 6-bit letters, 0 = 'A' .. 25 = 'Z'."""
        out = ""
        for _ in range(2):
            code = self.int(6, field)
            if code > 25:
                raise TCFError(f"{self.where}: {field} has invalid letter code {code} (must be 0-25)")
            out += chr(ord("A") + code)
        return out

    def deciseconds(self, field: str) -> str:
        value = self.int(36, field)
        # TCF stores epoch deciseconds; we keep second precision (floor) in ISO-8601 UTC. The
        # spec asks CMPs to round these timestamps to the day anyway, so nothing real is lost.
        try:
            moment = datetime.fromtimestamp(value // 10, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:  # pragma: no cover - 36 bits fit
            raise TCFError(f"{self.where}: {field} out of range") from exc
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def spend(self, n: int, field: str) -> None:
        self.budget[0] -= n
        if self.budget[0] < 0:
            raise TCFError(f"{self.where}: {field} expands to too many ids "
                           f"(more than {_MAX_EXPANDED_IDS} in one string)")

    def id_range(self, field: str, max_id: int | None) -> tuple[int, int]:
        """One range entry: IsARange 1, StartOrOnlyVendorId 16, [EndVendorId 16]."""
        is_range = self.bool(f"{field} IsARange")
        start = self.int(16, f"{field} StartOrOnlyVendorId")
        end = self.int(16, f"{field} EndVendorId") if is_range else start
        if start == 0:
            raise TCFError(f"{self.where}: {field} has vendor id 0 (ids start at 1)")
        if end < start:
            raise TCFError(f"{self.where}: {field} has a reversed range {start}-{end}")
        if max_id is not None and end > max_id:
            raise TCFError(f"{self.where}: {field} names vendor {end} above MaxVendorId {max_id}")
        self.spend(end - start + 1, field)
        return start, end

    def vendors(self, field: str) -> list[int]:
        """Vendor section: MaxVendorId 16, IsRangeEncoding 1, then a MaxVendorId-bit bitfield or
        NumEntries 12 followed by range entries."""
        max_id = self.int(16, f"{field} MaxVendorId")
        if not self.bool(f"{field} IsRangeEncoding"):
            return self.bitfield(max_id, f"{field} BitField")
        ids: set[int] = set()
        for _ in range(self.int(12, f"{field} NumEntries")):
            start, end = self.id_range(field, max_id)
            ids.update(range(start, end + 1))
        return sorted(ids)


def _bits(segment: str, number: int) -> str:
    """Base64url text (trailing '=' padding tolerated) to a bit string."""
    where = f"segment {number}"
    if not segment:
        raise TCFError(f"{where}: empty")
    body = segment.rstrip("=")
    if len(segment) - len(body) > 2:
        raise TCFError(f"{where}: not base64url (too much '=' padding)")
    if not body:
        raise TCFError(f"{where}: empty")
    out = []
    for pos, char in enumerate(body):
        six = _SIXBITS.get(char)
        if six is None:
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise TCFError(f"{where}: not base64url (invalid character {shown} at position {pos})")
        out.append(six)
    return "".join(out)


def _core(bits: str, budget: list[int]) -> dict:
    r = _Reader(bits, "core segment", budget)
    version = r.int(6, "Version")  # every non-empty segment has at least 6 bits
    if version == 1:
        raise TCFError("version 1 strings are not TCF v2 (TCF v1.1 consent string)")
    if version == 3:
        raise TCFError("version 3 is not TCF v2 (a GPP header also starts with 3: GPP string?)")
    if version != 2:
        raise TCFError(f"version {version} is not TCF v2 (core segment must start with version 2)")
    if len(bits) < _CORE_FIXED_BITS:
        raise TCFError(f"core segment too short: {len(bits)} bits, need at least {_CORE_FIXED_BITS}")
    out: dict = {
        "version": version,
        "created": r.deciseconds("Created"),
        "last_updated": r.deciseconds("LastUpdated"),
        "cmp_id": r.int(12, "CmpId"),
        "cmp_version": r.int(12, "CmpVersion"),
        "consent_screen": r.int(6, "ConsentScreen"),
        "consent_language": r.letters("ConsentLanguage"),
        "vendor_list_version": r.int(12, "VendorListVersion"),
        "tcf_policy_version": r.int(6, "TcfPolicyVersion"),
        "is_service_specific": r.bool("IsServiceSpecific"),
        "use_non_standard_stacks": r.bool("UseNonStandardTexts"),
        "special_feature_optins": r.bitfield(12, "SpecialFeatureOptIns"),
        "purposes_consent": r.bitfield(24, "PurposesConsent"),
        "purposes_li_transparency": r.bitfield(24, "PurposesLITransparency"),
        "purpose_one_treatment": r.bool("PurposeOneTreatment"),
        "publisher_cc": r.letters("PublisherCC"),
    }
    out["vendor_consents"] = r.vendors("vendor consent section")
    out["vendor_legitimate_interests"] = r.vendors("vendor legitimate interest section")
    restrictions = []
    for _ in range(r.int(12, "NumPubRestrictions")):
        purpose_id = r.int(6, "publisher restriction PurposeId")
        restriction_type = r.int(2, "publisher restriction RestrictionType")
        ids: set[int] = set()
        for _ in range(r.int(12, "publisher restriction NumEntries")):
            start, end = r.id_range("publisher restriction", None)
            ids.update(range(start, end + 1))
        restrictions.append({"purpose_id": purpose_id, "restriction_type": restriction_type,
                             "vendor_ids": sorted(ids)})
    out["publisher_restrictions"] = restrictions
    # Whatever is left is base64 padding (fewer than 6 bits from a conforming encoder): ignored.
    return out


def _publisher_tc(r: _Reader) -> dict:
    consent = r.bitfield(24, "PubPurposesConsent")
    li = r.bitfield(24, "PubPurposesLITransparency")
    n = r.int(6, "NumCustomPurposes")
    return {
        "pub_purposes_consent": consent,
        "pub_purposes_li_transparency": li,
        "num_custom_purposes": n,
        "custom_purposes_consent": r.bitfield(n, "CustomPurposesConsent"),
        "custom_purposes_li_transparency": r.bitfield(n, "CustomPurposesLITransparency"),
    }


def decode(tc_string: str) -> dict:
    """Decode a TCF v2 TC string (surrounding whitespace ignored) into a JSON-serializable dict.

    Core keys are always present; ``disclosed_vendors``, ``allowed_vendors`` (sorted vendor ids)
    and ``publisher_tc`` only when the string carries that segment. Raises TCFError."""
    if not isinstance(tc_string, str):
        raise TCFError(f"TC string must be a str, got {type(tc_string).__name__}")
    text = tc_string.strip()
    if not text:
        raise TCFError("empty TC string")
    if "~" in text:
        raise TCFError("a GPP string (sections separated by '~'), not a TCF v2 TC string")
    segments = text.split(".")
    if len(segments) > 4:
        raise TCFError(f"{len(segments)} segments, a TC string has at most 4")
    budget = [_MAX_EXPANDED_IDS]
    out = _core(_bits(segments[0], 1), budget)
    for number, segment in enumerate(segments[1:], start=2):
        bits = _bits(segment, number)
        r = _Reader(bits, f"segment {number}", budget)
        seg_type = r.int(3, "SegmentType")
        if seg_type == 0:
            raise TCFError(f"segment {number}: a second core segment (type 0); the core segment "
                           "must come first and only once")
        if seg_type not in _SEGMENT_NAMES:
            raise TCFError(f"segment {number}: unknown segment type {seg_type}")
        key = _SEGMENT_NAMES[seg_type]
        if key in out:
            raise TCFError(f"segment {number}: duplicate {key} segment (type {seg_type})")
        r.where = f"segment {number} ({key})"
        out[key] = _publisher_tc(r) if seg_type == 3 else r.vendors("vendors")
    return out


def granted_purposes(decoded: dict) -> set[int]:
    """TCF purpose ids (1-based) the user consented to, from a ``decode`` result."""
    try:
        return {int(p) for p in decoded["purposes_consent"]}
    except (KeyError, TypeError) as exc:
        raise TCFError("granted_purposes needs the dict returned by decode()") from exc
