"""Defensive payload reading: oddly shaped but signed payloads never raise."""

from handlers.payload import dig, request_id, text, user_id


def test_dig_and_text_survive_wrong_shapes():
    body = {"user": "U0STRING", "actions": [None], "view": {"state": {"values": []}}}
    assert dig(body, "user", "id") is None
    assert dig(body, "actions", 0, "value") is None
    assert dig(body, "actions", 5) is None
    assert text(body, "view", "state", "values", "group") == ""
    assert text({"t": "x" * 10}, "t", limit=3) == "xxx"


def test_user_and_request_ids_are_validated():
    assert user_id({"user": {"id": "U012ABC"}}, "user", "id") == "U012ABC"
    assert user_id({"user": {"id": "<!channel>"}}, "user", "id") is None
    good = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert request_id({"actions": [{"value": good}]}) == good
    assert request_id({"actions": [{"value": "../" + good}]}) is None
    assert request_id({"actions": [{"value": {"id": good}}]}) is None


def test_full_work_queue_answers_busy_instead_of_queueing(service):
    service.max_queued = 0
    told = []
    assert service.background(lambda: told.append("ran"), on_busy=lambda: told.append("busy")) is False
    assert told == ["busy"]
    service.max_queued = 10
    assert service.background(lambda: told.append("ran")) is True
    service.drain()
    assert told == ["busy", "ran"]
