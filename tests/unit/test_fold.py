import pytest

from projections.errors import EventRejected
from projections.session import apply, fold, query_parameters
from schemas.events import event_from_object
from schemas.session import decode_state, encode_state
from streams.devkit.events import at, campaign_click, cart_item_added, new_session_id, page_view, public_set

pytestmark = pytest.mark.unit


def events(*objects):
    return [event_from_object(o) for o in objects]


def test_page_view_copies_query_parameters_into_public():
    sid = new_session_id()
    state = fold(events(page_view(sid, "https://shop.example/p?utm_source=google&utm_campaign=bf&empty=")))
    assert state.id == sid
    assert state.namespaces["public"] == {
        "utm_source": {"value": "google"},
        "utm_campaign": {"value": "bf"},
        "empty": {"value": ""},
    }


def test_later_events_merge_and_keep_untouched_keys():
    sid = new_session_id()
    state = fold(
        events(
            page_view(sid, "https://s/?a=1&b=2", seconds=0),
            page_view(sid, "https://s/?b=3&c=4", seconds=5),
        )
    )
    assert {k: v["value"] for k, v in state.namespaces["public"].items()} == {"a": "1", "b": "3", "c": "4"}


def test_meta_counts_events_and_records_first_and_last_time():
    sid = new_session_id()
    state = fold(
        events(page_view(sid, "https://s/", 0), page_view(sid, "https://s/", 30), page_view(sid, "https://s/", 90))
    )
    assert state.meta.event_count == 3
    assert state.meta.first_event_time == at(0)
    assert state.meta.last_event_time == at(90)
    assert state.meta.last_event_time.endswith(":01:30Z")


def test_page_without_query_string_changes_only_meta():
    sid = new_session_id()
    state = fold(events(page_view(sid, "https://s/a?x=1"), page_view(sid, "https://s/b")))
    assert state.namespaces["public"] == {"x": {"value": "1"}}
    assert state.meta.event_count == 2


def test_apply_does_not_mutate_the_previous_state():
    sid = new_session_id()
    first = fold(events(page_view(sid, "https://s/?a=1")))
    snapshot = encode_state(first)
    apply(first, events(page_view(sid, "https://s/?a=2&b=1"))[0])
    assert encode_state(first) == snapshot


def test_campaign_click_sets_only_the_given_utm_keys():
    sid = new_session_id()
    state = fold(events(campaign_click(sid, utm_source="news", utm_campaign="blackfriday")))
    assert state.namespaces["public"] == {"utm_source": {"value": "news"}, "utm_campaign": {"value": "blackfriday"}}


def test_public_set_keeps_json_types():
    sid = new_session_id()
    state = fold(events(public_set(sid, {"n": 3, "flag": True, "obj": {"x": [1, 2]}, "s": "t"})))
    assert state.namespaces["public"]["n"] == {"value": 3}
    assert state.namespaces["public"]["flag"] == {"value": True}
    assert state.namespaces["public"]["obj"] == {"value": {"x": [1, 2]}}


def test_state_round_trips_through_its_codec():
    sid = new_session_id()
    state = fold(events(page_view(sid, "https://s/?a=1"), public_set(sid, {"n": 1.5})))
    assert decode_state(encode_state(state)) == state


def test_replay_is_deterministic():
    sid = new_session_id()
    stream = events(
        page_view(sid, "https://s/?a=1"), campaign_click(sid, 3, utm_source="x"), public_set(sid, {"k": [1]}, 4)
    )
    assert encode_state(fold(stream)) == encode_state(fold(list(stream)))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s/p?a=1&a=2", {"a": "2"}),
        ("https://s/p?q=t%C3%AAnis+azul", {"q": "tênis azul"}),
        ("https://s/p#frag?x=1", {}),
        ("/relative?x=1", {"x": "1"}),
    ],
)
def test_query_parameters(url, expected):
    assert query_parameters(url) == expected


def test_an_event_applied_again_is_skipped():
    sid = new_session_id()
    first = page_view(sid, "https://s/?a=1")
    state = fold(events(first, page_view(sid, "https://s/?a=2", 1), first, first))
    assert state.meta.event_count == 2
    assert state.namespaces["public"]["a"] == {"value": "2"}  # the repeat did not re-apply a=1


def test_the_memory_of_applied_ids_is_bounded_and_never_served():
    from projections.session import RECENT_IDS
    from schemas.session import encode_view

    sid = new_session_id()
    stream = events(*(page_view(sid, f"https://s/?n={n}", n) for n in range(RECENT_IDS + 10)))
    state = fold(stream)
    assert len(state.recent_ids) == RECENT_IDS
    assert state.recent_ids == [e.id for e in stream[-RECENT_IDS:]]
    assert b"recent_ids" not in encode_view(state)
    assert b"facts" not in encode_view(state)


def cart(state):
    return {key: entry["value"] for key, entry in state.namespaces["cart"].items()}


def test_cart_items_add_up_quantity_and_value_in_the_cart_currency():
    sid = new_session_id()
    state = fold(
        events(
            cart_item_added(sid, "sku-1", 2, 0.1, "BRL", 0),
            cart_item_added(sid, "sku-2", 1, 0.2, "BRL", 1),
            cart_item_added(sid, "sku-1", 3, 19.9, "BRL", 2),
        )
    )
    # Decimal sums: 2 x 0.1 + 0.2 + 3 x 19.9 is 60.1, not 60.10000000000001.
    assert cart(state) == {"cartItems": 6, "cartValue": 60.1, "cartCurrency": "BRL"}
    assert "cart" not in state.namespaces.get("public", {})


def test_an_item_in_another_currency_is_rejected_with_the_reason_and_the_state_is_kept():
    sid = new_session_id()
    state = fold(events(cart_item_added(sid, "sku-1", 1, 10, "BRL")))
    [usd] = events(cart_item_added(sid, "sku-2", 1, 5, "USD", 1))
    with pytest.raises(EventRejected, match="currency USD is not the cart's currency BRL"):
        apply(state, usd)
    assert fold([usd], state) == state  # the reference fold leaves it out, as the worker does


def test_clients_cannot_write_the_cart_through_public():
    sid = new_session_id()
    state = fold(events(public_set(sid, {"cart": {"cartItems": 99}}), cart_item_added(sid, "s", 1, 2.5, "EUR", 1)))
    assert cart(state) == {"cartItems": 1, "cartValue": 2.5, "cartCurrency": "EUR"}


def test_a_retried_event_is_applied_once():
    sid = new_session_id()
    [item] = events(cart_item_added(sid, "sku-1", 2, 3.0))
    state = fold([item, item, item])
    assert cart(state)["cartItems"] == 2
    assert state.meta.event_count == 1
