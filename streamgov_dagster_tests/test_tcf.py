"""TCF v2 TC string decoder: upstream conformance vectors plus hand-built strings.

The conformance vectors (../shared/conformance/consent/tcf_vectors.json) carry the values the
upstream iabtcf-java / iabtcf-es / iabgpp-java tests assert; those tests skip when the file is
absent. The hand-built strings (written with the small BitWriter below) always run, so a known
vector exists even without the conformance folder.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from streamgov_dagster.lib.tcf import TCFError, decode, granted_purposes
from streamgov_dagster_tests.conftest import CONFORMANCE

VECTORS_PATH = CONFORMANCE / "consent" / "tcf_vectors.json"
needs_vectors = pytest.mark.skipif(not VECTORS_PATH.exists(), reason=f"{VECTORS_PATH} not present")


def _vectors() -> list[dict]:
    if not VECTORS_PATH.exists():
        return []
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]


VECTORS = _vectors()
V2 = [v for v in VECTORS if v["type"].startswith("TCF v2")]
NOT_V2 = [v for v in VECTORS if not v["type"].startswith("TCF v2")]

# Upstream (camelCase) expectation name -> key of decode()'s result.
LIST_KEYS = {
    "purposesConsent": "purposes_consent",
    "vendorConsent": "vendor_consents",
    "vendorLegitimateInterest": "vendor_legitimate_interests",
    "allowedVendors": "allowed_vendors",
    "disclosedVendors": "disclosed_vendors",
}
CORE_KEYS = {
    "version", "created", "last_updated", "cmp_id", "cmp_version", "consent_screen",
    "consent_language", "vendor_list_version", "tcf_policy_version", "is_service_specific",
    "use_non_standard_stacks", "special_feature_optins", "purposes_consent",
    "purposes_li_transparency", "purpose_one_treatment", "publisher_cc", "vendor_consents",
    "vendor_legitimate_interests", "publisher_restrictions",
}


def _check_expected(decoded: dict, expected: dict) -> None:
    for name, want in expected.items():
        if name in LIST_KEYS:
            assert decoded[LIST_KEYS[name]] == want, name
        elif name == "purposesConsent_containsAll":
            assert set(want) <= set(decoded["purposes_consent"]), name
            assert set(want) <= granted_purposes(decoded)
        elif name == "pubPurposesConsent_count":
            assert len(decoded["publisher_tc"]["pub_purposes_consent"]) == want, name
        elif name == "version":
            assert decoded["version"] == want
        else:  # a new kind of expectation: fail rather than silently pass
            pytest.fail(f"test does not know how to check expectation {name!r}")


@needs_vectors
def test_vectors_file_has_v2_and_other_strings() -> None:
    assert V2 and NOT_V2


@needs_vectors
@pytest.mark.parametrize("vector", V2, ids=[v["id"] for v in V2])
def test_tcf_v2_vector(vector: dict) -> None:
    decoded = decode(vector["string"])
    assert CORE_KEYS <= decoded.keys()
    assert decoded["version"] == 2
    _check_expected(decoded, vector["expected"])
    json.dumps(decoded)  # JSON-serializable
    assert decode(f"  {vector['string']}\n") == decoded  # surrounding whitespace


@needs_vectors
@pytest.mark.parametrize("vector", NOT_V2, ids=[v["id"] for v in NOT_V2])
def test_non_v2_vector_rejected(vector: dict) -> None:
    with pytest.raises(TCFError) as info:
        decode(vector["string"])
    if vector["type"].startswith("TCF v1"):
        assert vector["expected"]["version"] == 1
        assert "version 1" in str(info.value)
    assert vector["string"] not in str(info.value) or len(vector["string"]) < 8


@needs_vectors
def test_vector_details_java() -> None:
    """Fields the upstream tests do not assert, checked by hand against the spec layout."""
    by_id = {v["id"]: v for v in VECTORS}
    core = decode(by_id["tcf-java-2"]["string"])
    assert core["created"] == "2019-12-04T18:53:00Z"
    assert core["last_updated"] == "2019-12-10T18:53:00Z"
    assert (core["cmp_id"], core["cmp_version"], core["consent_screen"]) == (2, 1, 1)
    assert (core["consent_language"], core["publisher_cc"]) == ("EN", "AQ")
    assert (core["vendor_list_version"], core["tcf_policy_version"]) == (7, 2)
    assert core["special_feature_optins"] == [1]
    assert core["publisher_restrictions"] == []
    assert "disclosed_vendors" not in core and "publisher_tc" not in core
    full = decode(by_id["tcf-java-4"]["string"])  # publisher segment carries '=' padding
    assert full["publisher_tc"] == {
        "pub_purposes_consent": [1], "pub_purposes_li_transparency": [24], "num_custom_purposes": 2,
        "custom_purposes_consent": [2], "custom_purposes_li_transparency": [1, 2],
    }
    assert decode(by_id["tcf-java-4"]["string"].rstrip("=")) == full
    assert {k: full[k] for k in core} == core


# ---------------------------------------------------------------------------------------------
# Hand-built strings

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class BitWriter:
    def __init__(self) -> None:
        self.bits = ""

    def int(self, value: int, width: int) -> BitWriter:
        assert 0 <= value < (1 << width) or (width == 0 and value == 0)
        self.bits += format(value, f"0{width}b") if width else ""
        return self

    def bool(self, value: bool) -> BitWriter:
        return self.int(int(value), 1)

    def bitfield(self, ids, width: int) -> BitWriter:
        self.bits += "".join("1" if i + 1 in set(ids) else "0" for i in range(width))
        return self

    def letters(self, two: str) -> BitWriter:
        for c in two:
            self.int(ord(c) - ord("A"), 6)
        return self

    def ranges(self, entries) -> BitWriter:
        """NumEntries 12 then entries: an int (single id) or a (start, end) tuple."""
        self.int(len(entries), 12)
        for e in entries:
            if isinstance(e, tuple):
                self.bool(True).int(e[0], 16).int(e[1], 16)
            else:
                self.bool(False).int(e, 16)
        return self

    def encode(self) -> str:
        bits = self.bits + "0" * (-len(self.bits) % 6)
        return "".join(ALPHABET[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6))


def _deciseconds(iso: str, extra: int = 0) -> int:
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 10 + extra


def _core_writer(vendor_section=None, li_section=None, restrictions=()) -> BitWriter:
    w = (BitWriter().int(2, 6)
         .int(_deciseconds("2020-01-26T17:01:00Z", extra=7), 36)  # .7 s is floored away
         .int(_deciseconds("2023-09-01T00:00:00Z"), 36)
         .int(300, 12).int(5, 12).int(3, 6).letters("FR").int(215, 12).int(4, 6)
         .bool(True).bool(False)
         .bitfield([1, 2], 12).bitfield([1, 3, 24], 24).bitfield([2, 7], 24)
         .bool(True).letters("DE"))
    (vendor_section or (lambda w: w.int(40, 16).bool(True).ranges([3, (10, 12), 40])))(w)
    (li_section or (lambda w: w.int(9, 16).bool(False).bitfield([2, 9], 9)))(w)
    w.int(len(restrictions), 12)
    for purpose, rtype, entries in restrictions:
        w.int(purpose, 6).int(rtype, 2).ranges(entries)
    return w


HAND_CORE = {
    "version": 2, "created": "2020-01-26T17:01:00Z", "last_updated": "2023-09-01T00:00:00Z",
    "cmp_id": 300, "cmp_version": 5, "consent_screen": 3, "consent_language": "FR",
    "vendor_list_version": 215, "tcf_policy_version": 4, "is_service_specific": True,
    "use_non_standard_stacks": False, "special_feature_optins": [1, 2],
    "purposes_consent": [1, 3, 24], "purposes_li_transparency": [2, 7], "purpose_one_treatment": True,
    "publisher_cc": "DE", "vendor_consents": [3, 10, 11, 12, 40], "vendor_legitimate_interests": [2, 9],
    "publisher_restrictions": [
        {"purpose_id": 2, "restriction_type": 1, "vendor_ids": [5, 6, 7, 8, 20]},
        {"purpose_id": 7, "restriction_type": 0, "vendor_ids": [1]},
    ],
}
HAND_RESTRICTIONS = [(2, 1, [(5, 8), 20]), (7, 0, [1])]


def test_hand_built_core_with_range_vendors_and_restrictions() -> None:
    s = _core_writer(restrictions=HAND_RESTRICTIONS).encode()
    decoded = decode(s)
    assert decoded == HAND_CORE
    assert granted_purposes(decoded) == {1, 3, 24}
    assert json.loads(json.dumps(decoded)) == decoded


def test_hand_built_all_segments_round_trip() -> None:
    core = _core_writer(restrictions=HAND_RESTRICTIONS).encode()
    disclosed = BitWriter().int(1, 3).int(700, 16).bool(True).ranges([(1, 4), 650, (698, 700)]).encode()
    allowed = BitWriter().int(2, 3).int(12, 16).bool(False).bitfield([3, 12], 12).encode()
    publisher = (BitWriter().int(3, 3).bitfield([1, 2, 10], 24).bitfield([24], 24).int(3, 6)
                 .bitfield([1, 3], 3).bitfield([2], 3).encode())
    # Segments may come in any order after the core; padded base64 is accepted too.
    s = ".".join([core, publisher + "=" * (-len(publisher) % 4), disclosed, allowed])
    decoded = decode(f"\t{s}  ")
    assert decoded == {
        **HAND_CORE,
        "disclosed_vendors": [1, 2, 3, 4, 650, 698, 699, 700],
        "allowed_vendors": [3, 12],
        "publisher_tc": {"pub_purposes_consent": [1, 2, 10], "pub_purposes_li_transparency": [24],
                         "num_custom_purposes": 3, "custom_purposes_consent": [1, 3],
                         "custom_purposes_li_transparency": [2]},
    }


def test_empty_vendor_sections() -> None:
    s = _core_writer(lambda w: w.int(0, 16).bool(False),  # bitfield, MaxVendorId 0
                     lambda w: w.int(0, 16).bool(True).ranges([])).encode()  # range, 0 entries
    decoded = decode(s)
    assert decoded["vendor_consents"] == [] and decoded["vendor_legitimate_interests"] == []
    assert decoded["publisher_restrictions"] == []


# ---------------------------------------------------------------------------------------------
# Malformed input

VALID = _core_writer(restrictions=HAND_RESTRICTIONS).encode()


@pytest.mark.parametrize("bad, message", [
    ("", "empty"),
    ("   \n", "empty"),
    ("abc", "not TCF v2"),
    ("BOhwdphOxFC7tAHABBFRC--AAAAuhr_7", "version 1"),
    ("DBABTA~1YNN", "GPP"),
    ("DBAA", "version 3"),
    (VALID[:20], "core segment too short: 120 bits, need at least 213"),
    (VALID[:40], "truncated"),
    (VALID[:-6], "truncated"),
    (VALID[:10] + "!" + VALID[11:], "segment 1: not base64url"),
    (VALID[:10] + "+" + VALID[11:], "segment 1: not base64url"),
    (VALID[:10] + "/" + VALID[11:], "segment 1: not base64url"),
    (VALID[:10] + "=" + VALID[11:], "segment 1: not base64url"),
    (VALID[:10] + " " + VALID[11:], "segment 1: not base64url"),
    (VALID + "===", "padding"),
    (VALID + ".", "segment 2: empty"),
    (VALID + "..IBAg", "segment 2: empty"),
    (VALID + ".8AAA", "unknown segment type 7"),
    (VALID + ".AAAA", "second core segment"),
    (VALID + ".IAAA.IAAA", "duplicate disclosed_vendors"),
    (VALID + ".IA", "segment 2 (disclosed_vendors) truncated"),
    (VALID + ".cAAA", "truncated"),
    (".".join([VALID] * 5), "at most 4"),
])
def test_malformed_raises(bad: str, message: str) -> None:
    with pytest.raises(TCFError, match=re.escape(message)) as info:
        decode(bad)
    if len(bad) > 12:
        assert bad.strip() not in str(info.value)  # never echo the input


@pytest.mark.parametrize("vendor_section, message", [
    (lambda w: w.int(40, 16).bool(True).ranges([0]), "vendor id 0"),
    (lambda w: w.int(40, 16).bool(True).ranges([(12, 10)]), "reversed range 12-10"),
    (lambda w: w.int(40, 16).bool(True).ranges([(30, 41)]), "above MaxVendorId 40"),
])
def test_bad_vendor_ranges(vendor_section, message: str) -> None:
    with pytest.raises(TCFError, match=message):
        decode(_core_writer(vendor_section).encode())


def test_bad_letters() -> None:
    w = _core_writer()
    at = 6 + 36 + 36 + 12 + 12 + 6  # ConsentLanguage offset; first letter := 30 (not A-Z)
    w.bits = w.bits[:at] + format(30, "06b") + w.bits[at + 6:]
    with pytest.raises(TCFError, match="ConsentLanguage has invalid letter code 30"):
        decode(w.encode())


def test_id_expansion_is_bounded() -> None:
    """A short string must not expand into millions of ids (17 x 1-65535 in one restriction)."""
    s = _core_writer(restrictions=[(1, 0, [(1, 65535)] * 17)]).encode()
    assert len(s) < 200
    with pytest.raises(TCFError, match="too many ids"):
        decode(s)


@pytest.mark.parametrize("value", [None, 42, b"CPAAAA"])
def test_non_string_raises(value) -> None:
    with pytest.raises(TCFError, match="must be a str"):
        decode(value)


def test_granted_purposes_needs_decoded_dict() -> None:
    with pytest.raises(TCFError):
        granted_purposes({})
