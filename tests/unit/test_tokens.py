import secrets

from common.tokens import BOUNCE, PIXEL, sign, verify

KEY = b"k" * 32


def new_pixel_id() -> str:
    return secrets.token_hex(16)


def test_a_signed_token_verifies_to_its_pixel_id() -> None:
    pixel_id = new_pixel_id()

    assert verify(sign(pixel_id, KEY), KEY) == pixel_id


def test_a_token_signed_with_another_key_is_rejected() -> None:
    token = sign(new_pixel_id(), b"other key")

    assert verify(token, KEY) is None


def test_any_changed_character_is_rejected() -> None:
    token = sign(new_pixel_id(), KEY)

    for i in range(len(token)):
        replacement = "A" if token[i] != "A" else "B"
        forged = token[:i] + replacement + token[i + 1 :]
        assert verify(forged, KEY) is None, f"position {i}"


def test_garbage_and_truncated_tokens_are_rejected() -> None:
    token = sign(new_pixel_id(), KEY)

    for bad in ["", "x", token[:-1], token + "A", "!" * 43, "=" * 43]:
        assert verify(bad, KEY) is None


def test_tokens_reveal_no_sequence_and_differ_per_message() -> None:
    tokens = {sign(new_pixel_id(), KEY) for _ in range(1000)}

    assert len(tokens) == 1000
    assert all(len(t) == 43 and t.isascii() and "=" not in t for t in tokens)


def test_a_token_made_for_one_purpose_is_rejected_for_another() -> None:
    token = sign(new_pixel_id(), KEY, BOUNCE)

    assert verify(token, KEY, BOUNCE) is not None
    assert verify(token, KEY, PIXEL) is None
