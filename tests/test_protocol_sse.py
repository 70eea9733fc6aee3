"""The server-sent events decoder the triggerer's shared client reads status streams with."""

from __future__ import annotations

import pytest

from airflow_provider_kling.protocol.sse import SSEDecoder


def _feed_all(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    events: list[str] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_one_event_per_blank_line_with_lf_crlf_and_cr_line_ends():
    stream = b'data: {"a":1}\n\ndata: {"b":2}\r\n\r\ndata: {"c":3}\r\r'
    assert _feed_all([stream]) == ['{"a":1}', '{"b":2}', '{"c":3}']


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_chunk_boundaries_anywhere_give_the_same_events(size):
    stream = b'data: {"a":1}\r\n\r\n: keep-alive\r\n\r\ndata: first\r\ndata:second\r\n\r\n'
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert _feed_all(chunks) == ['{"a":1}', "first\nsecond"]


def test_comments_other_fields_and_events_without_data_are_not_dispatched():
    stream = b": ping\n\nevent: status\nid: 7\nretry: 1000\n\nevent: status\ndata: x\n\n"
    assert _feed_all([stream]) == ["x"]


def test_only_one_space_after_the_colon_is_dropped_and_utf8_split_across_chunks_survives():
    text = "data:  two spaces \u00e9\n\n".encode()
    split = text.index(b"\xc3") + 1  # inside the two-byte é
    assert _feed_all([text[:split], text[split:]]) == [" two spaces \u00e9"]


def test_an_incomplete_event_is_kept_until_its_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: par") == []
    assert decoder.feed(b"tial\n") == []
    assert decoder.feed(b"\n") == ["partial"]


def test_an_endless_line_is_refused():
    decoder = SSEDecoder(max_line=16)
    with pytest.raises(ValueError, match="longer than 16 bytes"):
        decoder.feed(b"data: " + b"x" * 32)
